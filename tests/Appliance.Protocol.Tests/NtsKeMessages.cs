using System.Buffers.Binary;
using Appliance.Protocol.Nts;
using CsCheck;

namespace Appliance.Protocol.Tests;

/// <summary>One NTS-KE record in a test, equal to another with the same flag, type and body octets.</summary>
internal readonly record struct KeRecord(bool Critical, NtsKeRecordType Type, byte[] Body)
{
    public bool Equals(KeRecord other) => Critical == other.Critical && Type == other.Type && Body.AsSpan().SequenceEqual(other.Body);

    public override int GetHashCode() => HashCode.Combine(Critical, Type, Body.Length);

    public override string ToString() => $"{(Critical ? "critical " : "")}{Type} [{Convert.ToHexString(Body)}]";

    public static implicit operator KeRecord((bool Critical, NtsKeRecordType Type, byte[] Body) r) => new(r.Critical, r.Type, r.Body);
}

/// <summary>NTS-KE messages for tests: written from record lists, read back into them, and generated.</summary>
internal static class NtsKeMessages
{
    public static KeRecord End => new(true, NtsKeRecordType.EndOfMessage, []);

    public static byte[] Records(params KeRecord[] records)
    {
        var buffer = new byte[records.Sum(r => NtsKeRecords.HeaderLength + r.Body.Length)];
        int n = 0;
        foreach (var r in records)
        {
            n += NtsKeRecords.Write(buffer.AsSpan(n), r.Critical, r.Type, r.Body);
        }
        return buffer;
    }

    public static byte[] U16(params ushort[] values)
    {
        var b = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(i * 2), values[i]);
        }
        return b;
    }

    /// <summary>A message's records; fails the test unless the records cover it exactly.</summary>
    public static List<KeRecord> Read(ReadOnlySpan<byte> message)
    {
        var records = new List<KeRecord>();
        int offset = 0;
        while (NtsKeRecords.TryRead(message[offset..], out NtsKeRecord record, out int consumed))
        {
            records.Add(new KeRecord(record.Critical, (NtsKeRecordType)record.Type, record.Body.ToArray()));
            offset += consumed;
        }
        Assert.Equal(message.Length, offset);
        return records;
    }

    /// <summary>Record bodies that mean something to NTS-KE: protocol and AEAD ids, ports, host names, cookies, noise.</summary>
    private static readonly Gen<byte[]> s_body = Gen.Frequency(
        (3, Gen.OneOf<ushort>(0, 1, 15, 17, 30, 0x8000).Array[0, 3].Select(ids => U16(ids))),
        (1, Gen.OneOf<byte[]>([], [0], "ntp.example"u8.ToArray(), "2001:db8::1"u8.ToArray(), [0x20, 0x41], [0xC3, 0xA9])),
        (2, Gen.Byte.Array[0, 40]),
        (1, Gen.Byte.Array[104, 168]));

    /// <summary>Record types: the eight of RFC 8915 mostly, unassigned and private ones sometimes.</summary>
    private static readonly Gen<ushort> s_type = Gen.Frequency(
        (8, Gen.UShort[0, 7]),
        (1, Gen.UShort[8, 0x7FFF]));

    private static readonly Gen<byte[]> s_recordSequence =
        Gen.Select(Gen.Bool, s_type, s_body).Array[0, 12].Select(records =>
        {
            var buffer = new byte[records.Sum(r => NtsKeRecords.HeaderLength + r.Item3.Length)];
            int n = 0;
            foreach ((bool critical, ushort type, byte[] body) in records)
            {
                n += NtsKeRecords.Write(buffer.AsSpan(n), critical, (NtsKeRecordType)type, body);
            }
            return buffer;
        });

    /// <summary>
    /// Messages to throw at a machine: random octets, sequences of plausible records,
    /// <paramref name="seeds"/> (good messages) behind an ignorable record of up to 64 KiB (to reach
    /// the size limits), and seeds with octets flipped, cut or extended.
    /// </summary>
    public static Gen<byte[]> Inputs(params byte[][] seeds) => Gen.Frequency(
        (1, Gen.Byte.Array[0, 600]),
        (3, s_recordSequence),
        (1, Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Frequency((8, Gen.Int[0, 2000]), (1, Gen.Int[65000, 65535])))
            .Select((seed, padding) => (byte[])[.. Records((false, (NtsKeRecordType)0x1234, new byte[padding])), .. seeds[seed]])),
        (3, Mutations.Of(seeds, flips: 6, shrink: 24, grow: 24, maxLength: int.MaxValue)));

    /// <summary>Piece lengths for feeding a machine: empty (all at once), single octets, or a mix.</summary>
    public static readonly Gen<int[]> Splits = Gen.Frequency(
        (1, Gen.Const(Array.Empty<int>())),
        (1, Gen.Const(new[] { 1 })),
        (4, Gen.Int[1, 64].Array[1, 8]));
}
