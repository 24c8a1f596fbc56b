using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Appliance.Protocol.Crypto;

/// <summary>One 128-bit value per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneBlocks
{
    private Vector128<byte> _first;
}

/// <summary>One AES key schedule per lane of <see cref="AesSivLanes"/>, inline: no object per lane.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneRoundKeys
{
    private AesEncryptor.RoundKeys _first;
}

/// <summary>One count per lane of <see cref="AesSivLanes"/>.</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneCounts
{
    private int _first;
}

/// <summary>Each lane's CTR counter base (<see cref="SivBlocks.CounterBase"/>).</summary>
[InlineArray(AesSivLanes.Width)]
internal struct LaneCounters
{
    private Vector128<uint> _first;
}

/// <summary>
/// One value per lane of <see cref="AesSivLanes"/> for values an inline array cannot hold (spans: C#
/// has no inline array of a ref struct), so one field per lane, written out
/// (<see cref="AesSivLanes.WrittenOutWidth"/>).
/// </summary>
public ref struct Lanes<T>
    where T : allows ref struct
{
    private T _0, _1, _2, _3, _4, _5, _6, _7;

    public T this[int lane]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        readonly get => lane switch
        {
            0 => _0,
            1 => _1,
            2 => _2,
            3 => _3,
            4 => _4,
            5 => _5,
            6 => _6,
            7 => _7,
            _ => throw new ArgumentOutOfRangeException(nameof(lane)),
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set
        {
            switch (lane)
            {
                case 0: _0 = value; break;
                case 1: _1 = value; break;
                case 2: _2 = value; break;
                case 3: _3 = value; break;
                case 4: _4 = value; break;
                case 5: _5 = value; break;
                case 6: _6 = value; break;
                case 7: _7 = value; break;
                default: throw new ArgumentOutOfRangeException(nameof(lane));
            }
        }
    }
}
