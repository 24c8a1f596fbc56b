using Appliance.Server.Configuration;
using Appliance.Server.Migration;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The chrony.conf migrator (<c>appliance migrate</c>): the input is a chrony.conf, at most 4 KiB,
/// read by <see cref="ChronyConfReader"/> from a private directory in memory (/dev/shm) that is also
/// the root its include, confdir and sourcedir paths are looked up under, then mapped by
/// <see cref="ChronyMapper"/> and written as YAML. Invariants: no exception; every note names a line
/// of the file (or 0, for the file as a whole) and a directive; and the YAML written always binds
/// without error (the mapper checks every value against the key table, so an invalid result is the
/// mapper's bug, as <c>migrate</c> itself says).
/// </summary>
public static class ChronyTarget
{
    public const int MaxInput = 4096;

    private static readonly Lazy<string> s_root = new(() =>
    {
        string parent = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        return Directory.CreateDirectory(Path.Combine(parent, $"appliance-fuzz-chrony-{Environment.ProcessId}")).FullName;
    });

    public static void Run(ReadOnlySpan<byte> input)
    {
        string file = Path.Combine(s_root.Value, "chrony.conf");
        File.WriteAllBytes(file, input.ToArray());
        if (MigrateCommand.Migrate(file, s_root.Value, out string? error) is not { } migrated)
        {
            InvariantViolatedException.Check(!string.IsNullOrWhiteSpace(error), "a migration that failed without saying why");
            return;
        }
        (string yaml, MigrationResult result) = migrated;
        int lines = input.Count((byte)'\n') + 1;
        foreach (MigrationNote note in result.Notes)
        {
            InvariantViolatedException.Check(note.Line >= 0 && (note.File != file || note.Line <= lines) && note.Directive.Length > 0,
                $"a note at {note}");
        }
        ConfigResult check = ConfigLoader.Bind(yaml);
        InvariantViolatedException.Check(check.IsValid,
            $"the migrated configuration does not bind: {string.Join("; ", check.Errors.Select(e => e.Format("(migrated)")))}\n{yaml}");
    }
}
