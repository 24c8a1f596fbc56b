using System.Buffers.Binary;
using Appliance.Protocol;

namespace Appliance.Protocol.Tests;

public class ExtensionFieldTests
{
    [Fact]
    public void Write_PadsValueToMultipleOfFourAndMinimumLength()
    {
        var buffer = new byte[64];
        int written = ExtensionFields.Write(buffer, 0x0104, [1, 2, 3, 4, 5]);
        Assert.Equal(16, written);
        Assert.Equal(0x0104, BinaryPrimitives.ReadUInt16BigEndian(buffer));
        Assert.Equal(16, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(2)));

        written = ExtensionFields.Write(buffer, 0x0204, new byte[33]);
        Assert.Equal(40, written);
    }

    [Fact]
    public void Write_DoesNotFit_ReturnsZero()
    {
        Assert.Equal(0, ExtensionFields.Write(new byte[15], 1, []));
    }

    [Fact]
    public void TryGetLayout_FieldsThenMac_SplitsThem()
    {
        var region = new byte[32 + 20 + 24];
        int offset = ExtensionFields.Write(region, 0x0104, new byte[28]);
        offset += ExtensionFields.Write(region.AsSpan(offset), 0x0204, new byte[16]);
        Assert.Equal(52, offset);
        Assert.True(ExtensionFields.TryGetLayout(region, 4, out ExtensionLayout layout));
        Assert.Equal(new ExtensionLayout(52, 24), layout);

        var types = new List<ushort>();
        foreach (ExtensionField field in ExtensionFields.Enumerate(region.AsSpan(0, layout.FieldsLength)))
        {
            types.Add(field.Type);
        }
        Assert.Equal([0x0104, 0x0204], types);
    }

    [Fact]
    public void TryGetLayout_NoExtensionArea_IsEmpty()
    {
        Assert.True(ExtensionFields.TryGetLayout([], 4, out ExtensionLayout layout));
        Assert.Equal(default, layout);
    }

    [Theory]
    [InlineData(18)] // length not a multiple of 4
    [InlineData(12)] // below the 16-byte minimum
    public void TryGetLayout_BadFieldLength_IsMalformed(int declared)
    {
        var region = new byte[32];
        BinaryPrimitives.WriteUInt16BigEndian(region.AsSpan(2), (ushort)declared);
        Assert.False(ExtensionFields.TryGetLayout(region, 4, out _));
    }
}
