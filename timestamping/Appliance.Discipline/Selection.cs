namespace Appliance.Discipline;

/// <summary>The outcome of one selection round.</summary>
public sealed record SelectionResult(IReadOnlyList<Peer> Survivors, Peer? SystemPeer, double Offset, double Jitter)
{
    public static SelectionResult None { get; } = new([], null, 0, 0);
}

/// <summary>
/// Selection, clustering and combining (RFC 5905 §11.2): the intersection of correctness intervals
/// rejects falsetickers (Marzullo's algorithm as the RFC adapts it), clustering drops the truechimers
/// that add the most jitter, and the survivors are averaged weighted by 1/root distance.
/// </summary>
public static class SourceSelection
{
    public static SelectionResult Select(IReadOnlyList<Peer> peers, long now, int minSources = 1)
    {
        var candidates = new List<(Peer Peer, double Offset, double Distance)>();
        foreach (Peer peer in peers)
        {
            if (peer.Filter.Best is not { } best || peer.IsStale(now))
            {
                peer.Status = PeerStatus.NoSample;
                continue;
            }
            double distance = peer.RootDistance(now);
            // Stratum 0 is a reference clock's own sample (GPS, PPS, PTP); from the network a stratum-0
            // packet is a KoD, which the NTP client never turns into a sample.
            if (best.Leap == Appliance.Protocol.LeapIndicator.Unsynchronised || best.Stratum >= 16 || distance >= Constants.MaxDistance)
            {
                peer.Status = PeerStatus.Unfit;
                continue;
            }
            candidates.Add((peer, best.Offset, distance));
        }
        if (candidates.Count < minSources || candidates.Count == 0)
        {
            foreach (var c in candidates)
            {
                c.Peer.Status = PeerStatus.Unfit;
            }
            return SelectionResult.None;
        }

        // §11.2.1: the smallest number of falsetickers f for which an interval is contained in at
        // least n − f correctness intervals [θ − λ, θ + λ]. Unlike the RFC's text (and like chrony and
        // ntpd), midpoints outside the interval do not disqualify it: that rule rejects a precise
        // source together with a coarse one that agrees with it (a PPS edge and its receiver's
        // serial time: ±50 ns against ±0.1 s), leaving nothing. The truechimers are then the sources
        // whose intervals reach the intersection.
        int n = candidates.Count;
        var points = new List<(double Value, int Type)>(2 * n);
        foreach (var c in candidates)
        {
            points.Add((c.Offset - c.Distance, -1));
            points.Add((c.Offset + c.Distance, 1));
        }
        points.Sort((a, b) => a.Value != b.Value ? a.Value.CompareTo(b.Value) : a.Type.CompareTo(b.Type));
        double low = double.NaN, high = double.NaN;
        for (int allow = 0; 2 * allow < n; allow++)
        {
            int chime = 0;
            low = double.NaN;
            high = double.NaN;
            foreach ((double value, int type) in points)
            {
                chime -= type;
                if (chime >= n - allow)
                {
                    low = value;
                    break;
                }
            }
            chime = 0;
            for (int i = points.Count - 1; i >= 0; i--)
            {
                chime += points[i].Type;
                if (chime >= n - allow)
                {
                    high = points[i].Value;
                    break;
                }
            }
            if (low <= high)
            {
                break;
            }
            low = double.NaN;
        }
        if (double.IsNaN(low))
        {
            // No majority agrees: select nothing rather than something that may be wrong.
            foreach (var c in candidates)
            {
                c.Peer.Status = PeerStatus.Falseticker;
            }
            return SelectionResult.None;
        }
        var truechimers = new List<(Peer Peer, double Offset, double Distance)>();
        foreach (var c in candidates)
        {
            bool inside = c.Offset + c.Distance >= low && c.Offset - c.Distance <= high;
            c.Peer.Status = inside ? PeerStatus.Candidate : PeerStatus.Falseticker;
            if (inside)
            {
                truechimers.Add(c);
            }
        }
        if (truechimers.Count < minSources)
        {
            return SelectionResult.None;
        }

        // §11.2.2: drop the survivor with the largest selection jitter while that jitter exceeds
        // the smallest peer jitter and more than MinClock remain. A reference clock (stratum 0) is
        // never dropped here, as ntpd never drops its prefer peer: a PPS edge that sits a few
        // microseconds from three agreeing upstreams is the better clock, not the outlier.
        // Survivors are ranked by merit, stratum × MAXDIST + root distance (§11.2.3, A.5.5.3).
        static double Merit((Peer Peer, double Offset, double Distance) c) => (c.Peer.Filter.Best!.Value.Stratum * Constants.MaxDistance) + c.Distance;
        truechimers.Sort((a, b) => Merit(a).CompareTo(Merit(b)));
        while (truechimers.Count > Constants.MinClock)
        {
            int worst = -1;
            double worstJitter = 0, minPeerJitter = double.MaxValue;
            for (int i = 0; i < truechimers.Count; i++)
            {
                double sum = 0;
                for (int j = 0; j < truechimers.Count; j++)
                {
                    double d = truechimers[i].Offset - truechimers[j].Offset;
                    sum += d * d;
                }
                double selectionJitter = Math.Sqrt(sum / (truechimers.Count - 1));
                if (selectionJitter > worstJitter && truechimers[i].Peer.Filter.Best!.Value.Stratum != 0)
                {
                    worstJitter = selectionJitter;
                    worst = i;
                }
                minPeerJitter = Math.Min(minPeerJitter, truechimers[i].Peer.Filter.Jitter);
            }
            if (worstJitter <= minPeerJitter)
            {
                break;
            }
            truechimers[worst].Peer.Status = PeerStatus.Outlier;
            truechimers.RemoveAt(worst);
        }

        // §11.2.3: combine, weighted by 1/root distance; the first by merit is the system peer.
        double weights = 0, offset = 0;
        foreach (var c in truechimers)
        {
            double w = 1 / c.Distance;
            weights += w;
            offset += w * c.Offset;
        }
        offset /= weights;
        double jitter = 0;
        foreach (var c in truechimers)
        {
            double d = c.Offset - offset;
            jitter += d * d / c.Distance;
        }
        jitter = Math.Sqrt(jitter / weights);
        Peer system = truechimers[0].Peer;
        system.Status = PeerStatus.SystemPeer;
        return new SelectionResult(truechimers.Select(t => t.Peer).ToList(), system, offset, jitter);
    }
}
