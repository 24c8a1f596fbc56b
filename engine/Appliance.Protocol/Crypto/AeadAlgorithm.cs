namespace Appliance.Protocol.Crypto;

/// <summary>AEAD algorithm identifiers from the IANA AEAD registry (RFC 5116 §6, RFC 5297 §6).</summary>
public enum AeadAlgorithm : ushort
{
    /// <summary>AEAD_AES_SIV_CMAC_256: mandatory for NTS (RFC 8915 §5.1). 32-byte key.</summary>
    AesSivCmac256 = 15,

    /// <summary>AEAD_AES_SIV_CMAC_512: optional. 64-byte key.</summary>
    AesSivCmac512 = 17,
}

public static class AeadAlgorithms
{
    public static int KeyLength(AeadAlgorithm algorithm) => algorithm switch
    {
        AeadAlgorithm.AesSivCmac256 => 32,
        AeadAlgorithm.AesSivCmac512 => 64,
        _ => 0,
    };

    public static bool IsSupported(ushort id) => id is (ushort)AeadAlgorithm.AesSivCmac256 or (ushort)AeadAlgorithm.AesSivCmac512;
}
