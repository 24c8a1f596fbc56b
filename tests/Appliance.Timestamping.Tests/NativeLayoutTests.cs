using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Appliance.Testing;
using Appliance.Timestamping.Interop;

namespace Appliance.Timestamping.Tests;

/// <summary>Every native struct's size and field offsets, pinned to x86-64 glibc (../shared/NOTES-dotnet.md).</summary>
public class NativeLayoutTests
{
    [Fact]
    public void Timespec_Is16Bytes()
    {
        Assert.Equal(16, Marshal.SizeOf<Timespec>());
        Assert.Equal(8, (int)Marshal.OffsetOf<Timespec>(nameof(Timespec.Nanoseconds)));
    }

    [Fact]
    public void Passwd_Is48BytesWithUidAt16()
    {
        Assert.Equal(48, Marshal.SizeOf<Passwd>());
        Assert.Equal(16, (int)Marshal.OffsetOf<Passwd>(nameof(Passwd.Uid)));
        Assert.Equal(20, (int)Marshal.OffsetOf<Passwd>(nameof(Passwd.Gid)));
        Assert.Equal(32, (int)Marshal.OffsetOf<Passwd>(nameof(Passwd.Home)));
    }

    [Fact]
    public void CapabilityHeaderAndData_Are8And12Bytes()
    {
        Assert.Equal(8, Marshal.SizeOf<CapUserHeader>());
        Assert.Equal(12, Marshal.SizeOf<CapUserData>());
        Assert.Equal(8, (int)Marshal.OffsetOf<CapUserData>(nameof(CapUserData.Inheritable)));
    }

    [Fact]
    public void Timeval_Is16Bytes() => Assert.Equal(16, Marshal.SizeOf<Timeval>());

    [Fact]
    public void IoVec_Is16Bytes()
    {
        Assert.Equal(16, Marshal.SizeOf<IoVec>());
        Assert.Equal(8, (int)Marshal.OffsetOf<IoVec>(nameof(IoVec.Length)));
    }

    [Fact]
    public void MsgHdr_Is56BytesWithGlibcOffsets()
    {
        Assert.Equal(56, Marshal.SizeOf<MsgHdr>());
        Assert.Equal(0, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Name)));
        Assert.Equal(8, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.NameLength)));
        Assert.Equal(16, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Iov)));
        Assert.Equal(24, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.IovLength)));
        Assert.Equal(32, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Control)));
        Assert.Equal(40, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.ControlLength)));
        Assert.Equal(48, (int)Marshal.OffsetOf<MsgHdr>(nameof(MsgHdr.Flags)));
    }

    [Fact]
    public void MMsgHdr_Is64BytesWithLengthAt56()
    {
        Assert.Equal(64, Marshal.SizeOf<MMsgHdr>());
        Assert.Equal(56, (int)Marshal.OffsetOf<MMsgHdr>(nameof(MMsgHdr.Length)));
    }

    [Fact]
    public void CMsgHdr_Is16BytesWithDataAt16()
    {
        Assert.Equal(16, Marshal.SizeOf<CMsgHdr>());
        Assert.Equal(8, (int)Marshal.OffsetOf<CMsgHdr>(nameof(CMsgHdr.Level)));
        Assert.Equal(12, (int)Marshal.OffsetOf<CMsgHdr>(nameof(CMsgHdr.Type)));
        Assert.Equal(32, CMsgHdr.Space(12));   // CMSG_SPACE(sizeof(struct in_pktinfo))
        Assert.Equal(28, CMsgHdr.Len(12));     // CMSG_LEN(sizeof(struct in_pktinfo))
        Assert.Equal(64, CMsgHdr.Space(48));   // CMSG_SPACE(sizeof(struct scm_timestamping))
    }

    [Fact]
    public void PktInfo_Sizes()
    {
        Assert.Equal(12, Marshal.SizeOf<InPktInfo>());
        Assert.Equal(4, (int)Marshal.OffsetOf<InPktInfo>(nameof(InPktInfo.SpecificDestination)));
        Assert.Equal(8, (int)Marshal.OffsetOf<InPktInfo>(nameof(InPktInfo.Address)));
        Assert.Equal(20, Marshal.SizeOf<In6PktInfo>());
        Assert.Equal(16, (int)Marshal.OffsetOf<In6PktInfo>(nameof(In6PktInfo.IfIndex)));
    }

    [Fact]
    public void EpollEvent_Is12BytesPacked_DataAt4()
    {
        // x86-64 declares struct epoll_event __attribute__((packed)) (sys/epoll.h).
        Assert.Equal(12, Marshal.SizeOf<EpollEvent>());
        Assert.Equal(12, Unsafe.SizeOf<EpollEvent>());
        Assert.Equal(4, (int)Marshal.OffsetOf<EpollEvent>(nameof(EpollEvent.Data)));
    }

    [Fact]
    public void SockFilter_Is8Bytes_SockFprog16()
    {
        // linux/filter.h: sock_filter { u16 code; u8 jt, jf; u32 k; }, sock_fprog { u16 len; (pad) sock_filter *filter; }.
        Assert.Equal(8, Marshal.SizeOf<SockFilter>());
        Assert.Equal(4, (int)Marshal.OffsetOf<SockFilter>(nameof(SockFilter.K)));
        Assert.Equal(16, Marshal.SizeOf<SockFprog>());
        Assert.Equal(16, Unsafe.SizeOf<SockFprog>());
        Assert.Equal(8, (int)Marshal.OffsetOf<SockFprog>(nameof(SockFprog.Filter)));
    }

    [Fact]
    public void TimestampSourceNames_CoverTheEnum() =>
        Assert.Empty(NameTables.Problems<TimestampSource>(TimestampSourceNames.Count, TimestampSourceNames.Name));
}
