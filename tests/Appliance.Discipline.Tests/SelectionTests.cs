using Appliance.Protocol;

namespace Appliance.Discipline.Tests;

public class SelectionTests
{
    private static List<Peer> Peers(params Sample[] samples)
    {
        var peers = new List<Peer>();
        foreach (Sample s in samples)
        {
            var peer = new Peer(peers.Count, $"p{peers.Count}", 0x0A000001u + (uint)peers.Count);
            peer.Filter.Add(s);
            peers.Add(peer);
        }
        return peers;
    }

    [Fact]
    public void AFalsetickerHalfASecondOff_IsOutsideTheIntersection_RFC5905Section11_2_1()
    {
        List<Peer> peers = Peers(Samples.Make(0, 10e-6), Samples.Make(0, -20e-6), Samples.Make(0, 0.5), Samples.Make(0, 5e-6));
        SelectionResult result = SourceSelection.Select(peers, Samples.At(1));

        Assert.Equal(PeerStatus.Falseticker, peers[2].Status);
        Assert.Equal(3, result.Survivors.Count);
        Assert.DoesNotContain(peers[2], result.Survivors);
        Assert.NotNull(result.SystemPeer);
        Assert.InRange(result.Offset, -20e-6, 10e-6);
    }

    [Fact]
    public void TwoSourcesThatDisagree_SelectNothing()
    {
        List<Peer> peers = Peers(Samples.Make(0, 0), Samples.Make(0, 0.5));
        SelectionResult result = SourceSelection.Select(peers, Samples.At(1));
        Assert.Null(result.SystemPeer);
        Assert.All(peers, p => Assert.Equal(PeerStatus.Falseticker, p.Status));
    }

    [Fact]
    public void UnsynchronisedOrStratum16Sources_AreUnfit()
    {
        List<Peer> peers = Peers(
            Samples.Make(0, 0, leap: LeapIndicator.Unsynchronised),
            Samples.Make(0, 0, stratum: 16),
            Samples.Make(0, 0));
        SelectionResult result = SourceSelection.Select(peers, Samples.At(1));
        Assert.Equal(PeerStatus.Unfit, peers[0].Status);
        Assert.Equal(PeerStatus.Unfit, peers[1].Status);
        Assert.Same(peers[2], result.SystemPeer);
    }

    [Fact]
    public void ASourceSilentForEightPolls_IsNoLongerACandidate()
    {
        List<Peer> peers = Peers(Samples.Make(0, 0));
        peers[0].PollSeconds = 16;
        Assert.NotNull(SourceSelection.Select(peers, Samples.At(120)).SystemPeer);
        Assert.Null(SourceSelection.Select(peers, Samples.At(8 * 16 + 1)).SystemPeer);
        Assert.Equal(PeerStatus.NoSample, peers[0].Status);
    }

    [Fact]
    public void MinSources_IsHonoured()
    {
        List<Peer> peers = Peers(Samples.Make(0, 0));
        Assert.Null(SourceSelection.Select(peers, Samples.At(1), minSources: 2).SystemPeer);
    }

    [Fact]
    public void TheCombinedOffset_WeightsCloserSourcesMore_RFC5905Section11_2_3()
    {
        // Same offset spread, but the first source is ten times closer (smaller delay).
        List<Peer> peers = Peers(Samples.Make(0, 100e-6, delay: 100e-6), Samples.Make(0, 0, delay: 2e-3), Samples.Make(0, 0, delay: 2e-3));
        SelectionResult result = SourceSelection.Select(peers, Samples.At(1));
        Assert.Same(peers[0], result.SystemPeer);
        Assert.True(result.Offset > 50e-6, $"combined {result.Offset}");
    }
}
