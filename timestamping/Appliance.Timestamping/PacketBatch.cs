using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Appliance.Protocol;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping;

/// <summary>Where a packet's receive timestamp came from.</summary>
public enum TimestampSource : byte
{
    /// <summary>No kernel timestamp: the worker read the clock after the receive returned.</summary>
    UserSpace,

    /// <summary>The kernel's software receive timestamp (SO_TIMESTAMPING RX_SOFTWARE or SO_TIMESTAMPNS).</summary>
    KernelSoftware,

    /// <summary>The NIC's hardware receive timestamp (SO_TIMESTAMPING RAW_HARDWARE).</summary>
    Hardware,
}

/// <summary>Metric label values of <see cref="TimestampSource"/>: stable strings, allocated once.</summary>
public static class TimestampSourceNames
{
    private static readonly string[] s_names = ["user_space", "kernel_software", "hardware"];

    public static int Count => s_names.Length;

    public static string Name(TimestampSource source) => s_names[(int)source];
}

/// <summary>
/// A batch of datagram slots in native memory, filled by one recvmmsg and answered in place by one
/// sendmmsg. Allocated once per worker; nothing here allocates per packet. Owned by a single thread:
/// the spans it hands out are valid until the batch is disposed.
/// </summary>
public sealed unsafe class PacketBatch : IDisposable
{
    /// <summary>Room per datagram. NTS requests with many cookie placeholders stay well under this.</summary>
    public const int SlotSize = 2048;

    private const int RecvControlSize = 256;

    /// <summary>Room for IPV6_PKTINFO (40 bytes) and a SO_TIMESTAMPING request (24).</summary>
    private const int SendControlSize = 64;

    private readonly byte* _memory;
    private readonly MMsgHdr* _recv;
    private readonly MMsgHdr* _send;
    private readonly IoVec* _recvIov;
    private readonly IoVec* _sendIov;
    private readonly byte* _names;
    private readonly byte* _recvControl;
    private readonly byte* _sendControl;
    private readonly byte* _payloads;

    private readonly int[] _length;
    private readonly int[] _responseLength;
    private readonly long[] _timestamp;
    private readonly long[] _softwareTimestamp;
    private readonly TimestampSource[] _timestampSource;
    private readonly bool[] _truncated;
    private readonly NetAddress[] _destination;
    private readonly int[] _ifIndex;
    private readonly bool[] _wantTransmitTimestamp;
    private readonly bool[] _looped;
    private int _dirty;
    private bool _disposed;

    public PacketBatch(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, 1024);
        Capacity = capacity;
        nuint total = (nuint)capacity * (nuint)((2 * sizeof(MMsgHdr)) + (2 * sizeof(IoVec)) + SockAddr.StorageSize + RecvControlSize + SendControlSize + SlotSize);
        _memory = (byte*)NativeMemory.AlignedAlloc(total, 64);
        NativeMemory.Clear(_memory, total);
        byte* p = _memory;
        _recv = (MMsgHdr*)p; p += capacity * sizeof(MMsgHdr);
        _send = (MMsgHdr*)p; p += capacity * sizeof(MMsgHdr);
        _recvIov = (IoVec*)p; p += capacity * sizeof(IoVec);
        _sendIov = (IoVec*)p; p += capacity * sizeof(IoVec);
        _names = p; p += capacity * SockAddr.StorageSize;
        _recvControl = p; p += capacity * RecvControlSize;
        _sendControl = p; p += capacity * SendControlSize;
        _payloads = p;

        _length = new int[capacity];
        _responseLength = new int[capacity];
        _timestamp = new long[capacity];
        _softwareTimestamp = new long[capacity];
        _timestampSource = new TimestampSource[capacity];
        _truncated = new bool[capacity];
        _destination = new NetAddress[capacity];
        _ifIndex = new int[capacity];
        _wantTransmitTimestamp = new bool[capacity];
        _looped = new bool[capacity];
        InitializeReceive();
    }

    public int Capacity { get; }

    /// <summary>Datagrams in the batch from the last receive (or <see cref="Load"/>).</summary>
    public int Count { get; private set; }

    /// <summary>The slot's buffer (<see cref="SlotSize"/> bytes): the request on receive, the response after.</summary>
    public Span<byte> Payload(int slot) => new(_payloads + ((nint)slot * SlotSize), SlotSize);

    /// <summary>Bytes received in the slot.</summary>
    public int Length(int slot) => _length[slot];

    /// <summary>True when the datagram was longer than the slot and was cut (MSG_TRUNC).</summary>
    public bool Truncated(int slot) => _truncated[slot];

    /// <summary>Receive time, nanoseconds since the Unix epoch, or 0 when the kernel gave none.</summary>
    public long ReceiveTimestamp(int slot) => _timestamp[slot];

    public TimestampSource TimestampSource(int slot) => _timestampSource[slot];

    /// <summary>
    /// The kernel's software receive timestamp (CLOCK_REALTIME), or 0 when it gave none. Kept also
    /// when the hardware one is preferred: a NIC's clock is not the system's, and the worker measures
    /// the time between its own clock readings and arrivals.
    /// </summary>
    public long SoftwareTimestamp(int slot) => _softwareTimestamp[slot];

    public NetAddress Source(int slot) => NetAddress.FromBytes(SockAddr.AddressBytes(Name(slot)));

    public ushort SourcePort(int slot) => SockAddr.Port(Name(slot));

    /// <summary>The address the datagram was sent to (IP_PKTINFO / IPV6_PKTINFO): the reply leaves from it.</summary>
    public NetAddress Destination(int slot) => _destination[slot];

    /// <summary>Marks the slot's payload as a response of <paramref name="length"/> bytes (0: no response).</summary>
    public void SetResponse(int slot, int length) => _responseLength[slot] = length;

    public int ResponseLength(int slot) => _responseLength[slot];

    /// <summary>
    /// Asks the kernel for the transmit timestamp of the slot's response (a per-message SO_TIMESTAMPING
    /// control message), when the socket sending it takes them (<see cref="TimestampedSocketOptions.TransmitTimestamps"/>):
    /// it comes back on the socket's error queue (<see cref="TimestampedSocket.ReceiveTransmitTimestamps"/>).
    /// </summary>
    public void RequestTransmitTimestamp(int slot) => _wantTransmitTimestamp[slot] = true;

    /// <summary>
    /// After <see cref="TimestampedSocket.ReceiveTransmitTimestamps"/>: the slot holds a transmit
    /// timestamp the kernel looped back (sock_extended_err origin SO_EE_ORIGIN_TIMESTAMPING), in
    /// <see cref="ReceiveTimestamp"/>, and the payload the datagram left with, link-layer header and all.
    /// </summary>
    public bool IsLoopedTransmit(int slot) => _looped[slot];

    private Span<byte> Name(int slot) => new(_names + ((nint)slot * SockAddr.StorageSize), SockAddr.StorageSize);

    /// <summary>
    /// Puts a datagram into a slot as if it had been received from <paramref name="peer"/>: the
    /// in-memory engine for tests and benchmarks runs the same worker code with no socket. A client
    /// (the load generator) uses it to address a datagram to <paramref name="peer"/>.
    /// </summary>
    public void Load(int slot, ReadOnlySpan<byte> datagram, System.Net.IPEndPoint peer, long receiveTimestamp)
    {
        int copied = Math.Min(datagram.Length, SlotSize);
        datagram[..copied].CopyTo(Payload(slot));
        int nameLength = SockAddr.Write(Name(slot), peer);
        _recv[slot].Header.NameLength = (uint)nameLength;
        _dirty = Math.Max(_dirty, slot + 1);
        _length[slot] = copied;
        _truncated[slot] = datagram.Length > SlotSize;
        _timestamp[slot] = receiveTimestamp;
        _softwareTimestamp[slot] = receiveTimestamp;
        _timestampSource[slot] = receiveTimestamp != 0 ? Timestamping.TimestampSource.KernelSoftware : Timestamping.TimestampSource.UserSpace;
        _destination[slot] = default;
        _ifIndex[slot] = 0;
        _responseLength[slot] = 0;
        _wantTransmitTimestamp[slot] = false;
        _looped[slot] = false;
        Count = Math.Max(Count, slot + 1);
    }

    /// <summary>
    /// Writes a datagram for <paramref name="peer"/> (a raw sockaddr from <see cref="PeerAddress"/>)
    /// into a slot, sent from <paramref name="localAddress"/> (IP_PKTINFO; default: the routing
    /// table's choice). The load generator's send path: nothing allocated.
    /// </summary>
    public Span<byte> Prepare(int slot, ReadOnlySpan<byte> peer, NetAddress localAddress, int length)
    {
        peer.CopyTo(Name(slot));
        _recv[slot].Header.NameLength = (uint)peer.Length;
        _dirty = Math.Max(_dirty, slot + 1);
        _destination[slot] = localAddress;
        _ifIndex[slot] = 0;
        _wantTransmitTimestamp[slot] = false;
        _responseLength[slot] = length;
        _length[slot] = 0;
        Count = Math.Max(Count, slot + 1);
        return Payload(slot)[..length];
    }

    /// <summary>The raw sockaddr for an address, for <see cref="Prepare"/>.</summary>
    public static byte[] PeerAddress(System.Net.IPEndPoint endPoint)
    {
        var buffer = new byte[SockAddr.StorageSize];
        int length = SockAddr.Write(buffer, endPoint);
        return buffer[..length];
    }

    /// <summary>True when the datagram in the slot came from exactly this raw sockaddr.</summary>
    public bool CameFrom(int slot, ReadOnlySpan<byte> peer) =>
        _recv[slot].Header.NameLength == peer.Length && Name(slot)[..peer.Length].SequenceEqual(peer);

    /// <summary>Empties the batch (for <see cref="Load"/>).</summary>
    public void Clear() => Count = 0;

    /// <summary>
    /// Resets the headers the kernel overwrote (namelen, controllen, flags, len) before recvmmsg: only
    /// those of the datagrams received (or loaded) since the last reset, as the kernel writes back
    /// nothing for the message it stopped at. Resetting all of a 64-slot batch for every receive was
    /// the largest user-space cost of a worker at 30 k/s (2.6 % of its CPU, one datagram a turn).
    /// </summary>
    internal MMsgHdr* PrepareReceive()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        for (int i = 0; i < _dirty; i++)
        {
            ref MsgHdr h = ref _recv[i].Header;
            h.NameLength = SockAddr.StorageSize;
            h.ControlLength = RecvControlSize;
            h.Flags = 0;
            _recv[i].Length = 0;
        }
        _dirty = 0;
        return _recv;
    }

    /// <summary>Points every receive header at its slot's buffers once; the kernel never changes these.</summary>
    private void InitializeReceive()
    {
        for (int i = 0; i < Capacity; i++)
        {
            _recvIov[i].Base = _payloads + ((nint)i * SlotSize);
            _recvIov[i].Length = SlotSize;
            ref MsgHdr h = ref _recv[i].Header;
            h.Name = _names + ((nint)i * SockAddr.StorageSize);
            h.Iov = &_recvIov[i];
            h.IovLength = 1;
            h.Control = _recvControl + ((nint)i * RecvControlSize);
        }
        _dirty = Capacity;
    }

    /// <summary>Reads lengths, flags and control messages of the <paramref name="count"/> datagrams received.</summary>
    internal void CompleteReceive(int count, bool preferHardware)
    {
        Count = count;
        _dirty = Math.Max(_dirty, count);
        for (int i = 0; i < count; i++)
        {
            ref MMsgHdr m = ref _recv[i];
            _length[i] = (int)Math.Min(m.Length, SlotSize);
            _truncated[i] = (m.Header.Flags & Libc.MsgTrunc) != 0;
            _responseLength[i] = 0;
            _timestamp[i] = 0;
            _softwareTimestamp[i] = 0;
            _timestampSource[i] = Timestamping.TimestampSource.UserSpace;
            _destination[i] = default;
            _ifIndex[i] = 0;
            _wantTransmitTimestamp[i] = false;
            _looped[i] = false;
            ParseControl(i, new ReadOnlySpan<byte>(m.Header.Control, (int)m.Header.ControlLength), preferHardware);
        }
    }

    private void ParseControl(int slot, ReadOnlySpan<byte> control, bool preferHardware)
    {
        int offset = 0;
        while (control.Length - offset >= sizeof(CMsgHdr))
        {
            int length = (int)BinaryPrimitives.ReadUInt64LittleEndian(control[offset..]);
            int level = BinaryPrimitives.ReadInt32LittleEndian(control[(offset + 8)..]);
            int type = BinaryPrimitives.ReadInt32LittleEndian(control[(offset + 12)..]);
            if (length < sizeof(CMsgHdr) || length > control.Length - offset)
            {
                break;
            }
            ReadOnlySpan<byte> data = control.Slice(offset + sizeof(CMsgHdr), length - sizeof(CMsgHdr));
            if (level == Libc.SolSocket && type == Libc.SoTimestamping && data.Length >= 3 * sizeof(Timespec))
            {
                // struct scm_timestamping { timespec ts[3]; }: [0] software, [2] raw hardware.
                long hardware = ReadTimespec(data[(2 * sizeof(Timespec))..]);
                long software = ReadTimespec(data);
                _softwareTimestamp[slot] = software;
                if (preferHardware && hardware != 0)
                {
                    _timestamp[slot] = hardware;
                    _timestampSource[slot] = Timestamping.TimestampSource.Hardware;
                }
                else if (software != 0)
                {
                    _timestamp[slot] = software;
                    _timestampSource[slot] = Timestamping.TimestampSource.KernelSoftware;
                }
            }
            else if (level == Libc.SolSocket && type == Libc.SoTimestampNs && data.Length >= sizeof(Timespec))
            {
                _timestamp[slot] = ReadTimespec(data);
                _softwareTimestamp[slot] = _timestamp[slot];
                _timestampSource[slot] = Timestamping.TimestampSource.KernelSoftware;
            }
            else if (((level == Libc.IpProtoIp && type == Libc.IpRecvErr) || (level == Libc.IpProtoIpv6 && type == Libc.Ipv6RecvErr))
                && data.Length >= 8)
            {
                // struct sock_extended_err { u32 ee_errno; u8 ee_origin; ... }: only the error queue carries it.
                _looped[slot] = data[4] == Libc.SoEeOriginTimestamping;
            }
            else if (level == Libc.IpProtoIp && type == Libc.IpPktInfo && data.Length >= sizeof(InPktInfo))
            {
                _ifIndex[slot] = BinaryPrimitives.ReadInt32LittleEndian(data);
                _destination[slot] = NetAddress.FromBytes(data.Slice(8, 4)); // ipi_addr: the header's destination
            }
            else if (level == Libc.IpProtoIpv6 && type == Libc.Ipv6PktInfo && data.Length >= sizeof(In6PktInfo))
            {
                _destination[slot] = NetAddress.FromBytes(data[..16]);
                _ifIndex[slot] = BinaryPrimitives.ReadInt32LittleEndian(data[16..]);
            }
            offset += CMsgHdr.Align(length);
        }
    }

    private static long ReadTimespec(ReadOnlySpan<byte> data) =>
        (BinaryPrimitives.ReadInt64LittleEndian(data) * 1_000_000_000L) + BinaryPrimitives.ReadInt64LittleEndian(data[8..]);

    /// <summary>
    /// Builds the sendmmsg headers for every slot with a response: back to the sender's address, from
    /// the address the request came to (IP_PKTINFO / IPV6_PKTINFO), so multi-homed hosts answer from
    /// the right address, and with <paramref name="transmitFlags"/> (SO_TIMESTAMPING TX flags, 0 for
    /// none) for the slots that asked for a transmit timestamp. Returns the number of messages.
    /// </summary>
    internal int PrepareSend(MMsgHdr** messages, bool ipv6, int transmitFlags)
    {
        int n = 0;
        for (int i = 0; i < Count; i++)
        {
            int length = _responseLength[i];
            if (length <= 0)
            {
                continue;
            }
            _sendIov[n].Base = _payloads + ((nint)i * SlotSize);
            _sendIov[n].Length = (nuint)length;
            ref MsgHdr h = ref _send[n].Header;
            h.Name = _names + ((nint)i * SockAddr.StorageSize);
            h.NameLength = _recv[i].Header.NameLength;
            h.Iov = &_sendIov[n];
            h.IovLength = 1;
            h.Flags = 0;
            h.Control = null;
            h.ControlLength = 0;
            byte* control = _sendControl + ((nint)n * SendControlSize);
            int used = 0;
            if (_destination[i] != default)
            {
                NativeMemory.Clear(control, SendControlSize);
                var cmsg = (CMsgHdr*)control;
                if (ipv6)
                {
                    cmsg->Level = Libc.IpProtoIpv6;
                    cmsg->Type = Libc.Ipv6PktInfo;
                    cmsg->Length = (nuint)CMsgHdr.Len(sizeof(In6PktInfo));
                    var info = (In6PktInfo*)(control + sizeof(CMsgHdr));
                    _destination[i].WriteBytes(new Span<byte>(info->Address, 16));
                    info->IfIndex = _ifIndex[i];
                    used = CMsgHdr.Space(sizeof(In6PktInfo));
                }
                else
                {
                    cmsg->Level = Libc.IpProtoIp;
                    cmsg->Type = Libc.IpPktInfo;
                    cmsg->Length = (nuint)CMsgHdr.Len(sizeof(InPktInfo));
                    var info = (InPktInfo*)(control + sizeof(CMsgHdr));
                    info->IfIndex = 0; // let the routing table choose the interface for this source address
                    info->SpecificDestination = BinaryPrimitives.ReverseEndianness(_destination[i].IPv4);
                    used = CMsgHdr.Space(sizeof(InPktInfo));
                }
            }
            if (transmitFlags != 0 && _wantTransmitTimestamp[i])
            {
                // A per-message request (Documentation/networking/timestamping.rst §1.3.4): only this
                // datagram is stamped and looped back, not every response the socket sends.
                var cmsg = (CMsgHdr*)(control + used);
                cmsg->Level = Libc.SolSocket;
                cmsg->Type = Libc.SoTimestamping;
                cmsg->Length = (nuint)CMsgHdr.Len(sizeof(int));
                *(int*)(control + used + sizeof(CMsgHdr)) = transmitFlags;
                used += CMsgHdr.Space(sizeof(int));
            }
            if (used > 0)
            {
                h.Control = control;
                h.ControlLength = (nuint)used;
            }
            _send[n].Length = 0;
            n++;
        }
        *messages = _send;
        return n;
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            NativeMemory.AlignedFree(_memory);
        }
    }
}
