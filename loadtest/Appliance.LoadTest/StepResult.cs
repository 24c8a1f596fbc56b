namespace Appliance.LoadTest;

/// <summary>Everything measured in one step against one target.</summary>
internal sealed record StepResult
{
    public required string Target { get; init; }
    public required string Protocol { get; init; }
    public required double TargetRate { get; init; }
    public required double DurationSeconds { get; init; }
    public long Sent { get; init; }
    public long SendErrors { get; init; }

    /// <summary>Datagrams received from anywhere on the generator's sockets.</summary>
    public long Received { get; init; }

    /// <summary>Requests that got a matching response (valid, invalid or KoD).</summary>
    public long Answered { get; init; }

    public long Valid { get; init; }
    public long Invalid { get; init; }
    public Dictionary<string, long> InvalidReasons { get; init; } = [];
    public long Kod { get; init; }
    public Dictionary<string, long> KodCodes { get; init; } = [];

    /// <summary>Send rate achieved; below the target when the generator itself was the limit.</summary>
    public double SentRate { get; init; }

    /// <summary>Valid responses per second.</summary>
    public double ValidRate { get; init; }

    public double LossPercent { get; init; }
    public double InvalidPercent { get; init; }
    public double DelayP50Micros { get; init; }
    public double DelayP99Micros { get; init; }
    public double DelayP999Micros { get; init; }
    public double OffsetP50Micros { get; init; }

    /// <summary>99th percentile of |offset|.</summary>
    public double OffsetP99Micros { get; init; }

    /// <summary>99th percentile of the server's T3 − T2.</summary>
    public double ProcessingP99Micros { get; init; }

    public double ProcessingP50Micros { get; init; }

    public double ProcessingP90Micros { get; init; }

    public double ProcessingP999Micros { get; init; }

    /// <summary>Server CPU time per answered request (with --pid).</summary>
    public double? ServerCpuMicrosPerResponse { get; init; }

    /// <summary>T4 − T1 of valid answers: the time a client waits, the server's queue included.</summary>
    public double ResponseTimeP50Micros { get; init; }

    public double ResponseTimeP99Micros { get; init; }

    /// <summary>With pollers (<see cref="GeneratorOptions.Pollers"/>): valid answers that came before their client's next request.</summary>
    public long? Fresh { get; init; }

    /// <summary>With pollers: valid answers that came after their client's next request had left (of no use to it).</summary>
    public long? Stale { get; init; }

    public double? FreshRate { get; init; }

    /// <summary>Server peak resident memory, MiB (with --pid).</summary>
    public double? ServerPeakRssMiB { get; init; }

    /// <summary>True when the generator could not send at the target rate: the step measures the generator, not the server.</summary>
    public bool GeneratorLimited { get; init; }

    /// <summary>Protocol-specific counts (NTS: cookies received, NAKs, handshakes).</summary>
    public Dictionary<string, long> Extra { get; init; } = [];

    /// <summary>The legitimate client beside the load (--legit), or null.</summary>
    public LegitResult? Legit { get; init; }

    public bool Held(double lossThresholdPercent) => !GeneratorLimited && LossPercent <= lossThresholdPercent && Invalid == 0;
}
