namespace Appliance.Protocol.Crypto;

/// <summary>AEAD algorithm identifiers from the IANA AEAD registry (RFC 5116 §6, RFC 5297 §6, RFC 8452 §9).</summary>
public enum AeadAlgorithm : ushort
{
    /// <summary>AEAD_AES_SIV_CMAC_256: mandatory for NTS (RFC 8915 §5.1). 32-byte key.</summary>
    AesSivCmac256 = 15,

    /// <summary>AEAD_AES_SIV_CMAC_512: optional. 64-byte key.</summary>
    AesSivCmac512 = 17,

    /// <summary>AEAD_AES_128_GCM_SIV (RFC 8452): 16-byte key, a nonce of exactly 12 bytes, the tag last.</summary>
    Aes128GcmSiv = 30,
}

/// <summary>What NTS needs to know of each AEAD: key and nonce lengths, where the tag sits, the name an operator writes.</summary>
public static class AeadAlgorithms
{
    /// <summary>Every AEAD this code speaks, in the order a server prefers them by default.</summary>
    public static IReadOnlyList<AeadAlgorithm> All { get; } = [AeadAlgorithm.AesSivCmac256, AeadAlgorithm.Aes128GcmSiv, AeadAlgorithm.AesSivCmac512];

    /// <summary>The tag (AES-SIV's synthetic IV, GCM-SIV's tag): 16 octets for every AEAD here.</summary>
    public const int TagLength = 16;

    /// <summary>The longest nonce this code sends (<see cref="NonceLength"/>).</summary>
    public const int MaxNonceLength = 16;

    public static int KeyLength(AeadAlgorithm algorithm) => algorithm switch
    {
        AeadAlgorithm.AesSivCmac256 => 32,
        AeadAlgorithm.AesSivCmac512 => 64,
        AeadAlgorithm.Aes128GcmSiv => AesGcmSiv.KeyLength,
        _ => 0,
    };

    public static bool IsSupported(ushort id) => id is (ushort)AeadAlgorithm.AesSivCmac256 or (ushort)AeadAlgorithm.AesSivCmac512 or (ushort)AeadAlgorithm.Aes128GcmSiv;

    /// <summary>
    /// The nonce this code puts in an NTS authenticator (RFC 8915 §5.6): 16 octets for AES-SIV (any
    /// length works; 16 needs no additional padding), exactly 12 for GCM-SIV, the only length it takes
    /// (RFC 8452 §4).
    /// </summary>
    public static int NonceLength(AeadAlgorithm algorithm) => algorithm == AeadAlgorithm.Aes128GcmSiv ? AesGcmSiv.NonceLength : 16;

    /// <summary>
    /// Whether an authenticator's nonce is acceptable (RFC 8915 §5.6): the nonce, padded to four octets,
    /// and the additional padding after the ciphertext make at least N_REQ = min(16, N_MAX) octets
    /// (16 for AES-SIV, whose N_MAX is unbounded; 12 for GCM-SIV), "Servers MUST enforce this
    /// requirement by discarding any packet that does not conform"; and GCM-SIV's nonce is 12 octets.
    /// </summary>
    /// <param name="paddedNonceAndPadding">The padded nonce plus the additional padding, in octets.</param>
    public static bool AcceptsNonce(AeadAlgorithm algorithm, int nonceLength, int paddedNonceAndPadding) => algorithm == AeadAlgorithm.Aes128GcmSiv
        ? nonceLength == AesGcmSiv.NonceLength && paddedNonceAndPadding >= AesGcmSiv.NonceLength
        : nonceLength > 0 && paddedNonceAndPadding >= 16;

    /// <summary>
    /// Where the plaintext lies in the AEAD's output (RFC 5116 §2.1 "ciphertext"): after the 16-octet
    /// SIV for AES-SIV (RFC 5297 §2.6), at its start for GCM-SIV, whose tag comes last (RFC 8452 §4).
    /// Sealing in place writes the plaintext there.
    /// </summary>
    public static int PlaintextOffset(AeadAlgorithm algorithm) => algorithm == AeadAlgorithm.Aes128GcmSiv ? 0 : TagLength;

    /// <summary>The IANA name without its AEAD_ prefix, as configuration and logs write it.</summary>
    public static string Name(AeadAlgorithm algorithm) => algorithm switch
    {
        AeadAlgorithm.AesSivCmac256 => "AES-SIV-CMAC-256",
        AeadAlgorithm.AesSivCmac512 => "AES-SIV-CMAC-512",
        AeadAlgorithm.Aes128GcmSiv => "AES-128-GCM-SIV",
        _ => ((ushort)algorithm).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    /// <summary>An AEAD by its name (<see cref="Name"/>, any case, AEAD_ prefix allowed) or its IANA number.</summary>
    public static bool TryParse(string text, out AeadAlgorithm algorithm)
    {
        string name = text.Trim();
        if (name.StartsWith("AEAD_", StringComparison.OrdinalIgnoreCase))
        {
            name = name[5..];
        }
        name = name.Replace('_', '-');
        foreach (AeadAlgorithm candidate in All)
        {
            if (string.Equals(Name(candidate), name, StringComparison.OrdinalIgnoreCase)
                || name == ((ushort)candidate).ToString(System.Globalization.CultureInfo.InvariantCulture))
            {
                algorithm = candidate;
                return true;
            }
        }
        algorithm = default;
        return false;
    }

    /// <summary>The AEAD keyed with <paramref name="key"/>, for the NTS client's authenticators.</summary>
    public static INtsAead Create(AeadAlgorithm algorithm, ReadOnlySpan<byte> key) => algorithm switch
    {
        AeadAlgorithm.Aes128GcmSiv => new AesGcmSiv(key),
        AeadAlgorithm.AesSivCmac256 or AeadAlgorithm.AesSivCmac512 => new AesSiv(key),
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "not an AEAD this code speaks"),
    };
}

/// <summary>
/// An AEAD through the RFC 5116 interface, as NTS uses it (RFC 8915 §5.6): one associated-data
/// string, a nonce, and an output of <see cref="AeadAlgorithms.TagLength"/> more octets than the
/// plaintext. <see cref="AesSiv"/> and <see cref="AesGcmSiv"/>.
/// </summary>
public interface INtsAead
{
    AeadAlgorithm Algorithm { get; }

    void Encrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> output);

    /// <summary>False, and the plaintext cleared, when it is not authentic.</summary>
    bool Decrypt(ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext);
}
