namespace Appliance.Protocol.Nts;

/// <summary>NTS extension field types (RFC 8915 §5.3–5.6, IANA "NTP Extension Field Types").</summary>
public static class NtsExtensionField
{
    public const ushort UniqueIdentifier = 0x0104;
    public const ushort Cookie = 0x0204;
    public const ushort CookiePlaceholder = 0x0304;
    public const ushort Authenticator = 0x0404;

    /// <summary>A Unique Identifier body carries at least 32 random octets (RFC 8915 §5.3).</summary>
    public const int MinUniqueIdentifierLength = 32;
}

/// <summary>Randomness passed in (DESIGN.md boundary 1): the engine supplies a CSPRNG-backed source.</summary>
public interface IRandomSource
{
    void Fill(Span<byte> destination);
}
