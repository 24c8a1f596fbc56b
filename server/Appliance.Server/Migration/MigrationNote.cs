namespace Appliance.Server.Migration;

/// <summary>What became of one chrony.conf directive.</summary>
public enum MigrationOutcome
{
    /// <summary>The appliance does the same thing.</summary>
    Mapped = 1,

    /// <summary>Mapped, but the appliance behaves differently in a way the note names.</summary>
    MappedWithDifference,

    /// <summary>The appliance needs nothing for it: chrony housekeeping, or what the appliance does by itself.</summary>
    NoCounterpart,

    /// <summary>Left out: the note says why and what to do instead.</summary>
    NotMapped,
}

/// <summary>One line of the migration report: a directive (or a whole-file fact, at line 0) and its outcome.</summary>
/// <param name="File">The chrony file as chrony names it.</param>
/// <param name="Line">1-based; 0 for what the file as a whole implies (no allow directive, say).</param>
/// <param name="Directive">The directive's name, lower case; "(file)" for a whole-file note.</param>
public sealed record MigrationNote(string File, int Line, string Directive, MigrationOutcome Outcome, string Message)
{
    public static string OutcomeText(MigrationOutcome outcome) => outcome switch
    {
        MigrationOutcome.Mapped => "mapped",
        MigrationOutcome.MappedWithDifference => "mapped with a difference",
        MigrationOutcome.NoCounterpart => "no counterpart needed",
        MigrationOutcome.NotMapped => "not mapped",
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };

    /// <summary>"file:line: directive: outcome: message".</summary>
    public override string ToString() => $"{File}:{Line}: {Directive}: {OutcomeText(Outcome)}: {Message}";
}
