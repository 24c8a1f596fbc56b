using System.CommandLine;
using System.Text;
using System.Text.Json;
using Appliance.Server.Configuration;

namespace Appliance.Server.Migration;

/// <summary>
/// <c>appliance migrate FILE [-o OUT.yaml] [--report REPORT] [--json] [--root DIR]</c>: reads a chrony
/// configuration, writes the appliance YAML (stdout or OUT) and the report of every directive
/// (stderr or REPORT). Exit 0: written, everything mapped (perhaps with differences); 1: written,
/// but some directive could not be mapped (a notice on stderr says how many); 2: the file could not
/// be read, or the output not written.
/// </summary>
public static class MigrateCommand
{
    /// <summary>The YAML was written, but at least one directive is "not mapped".</summary>
    public const int ExitNotMapped = 1;

    public static Command Build()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "the chrony configuration, e.g. /etc/chrony/chrony.conf" };
        var output = new Option<FileInfo?>("--output", "-o") { Description = "write the YAML here instead of to stdout" };
        var report = new Option<FileInfo?>("--report") { Description = "write the report here instead of to stderr" };
        var json = new Option<bool>("--json") { Description = "write the report as JSON" };
        var root = new Option<DirectoryInfo?>("--root")
        {
            Description = "look up the absolute paths of include, confdir and sourcedir under this directory (a copy of another machine's /)",
        };
        var command = new Command("migrate", "Translate a chrony.conf into the appliance's YAML, with a report of what became of every directive.")
        {
            file, output, report, json, root,
        };
        command.SetAction(parse => Run(parse.GetValue(file)!, parse.GetValue(output), parse.GetValue(report), parse.GetValue(json), parse.GetValue(root)));
        return command;
    }

    /// <summary>Reads and maps <paramref name="path"/>; null with <paramref name="error"/> when the file cannot be read.</summary>
    public static (string Yaml, MigrationResult Result)? Migrate(string path, string? root, out string? error)
    {
        ChronyConf conf = ChronyConfReader.Read(path, root);
        if (conf.Error is not null)
        {
            error = conf.Error;
            return null;
        }
        MigrationResult result = ChronyMapper.Map(conf, path);
        string header = $"Migrated from {Path.GetFileName(path)} by appliance migrate {Program.Version}.\n"
            + "Every directive is in the migration report; keys left out take the defaults of docs/configuration.md.";
        error = null;
        return (result.Config.ToYaml(header), result);
    }

    private static int Run(FileInfo file, FileInfo? output, FileInfo? reportFile, bool json, DirectoryInfo? root)
    {
        if (Migrate(file.ToString(), root?.FullName, out string? error) is not { } migrated)
        {
            Console.Error.WriteLine($"appliance migrate: {error}");
            return Program.ExitConfigError;
        }
        (string yaml, MigrationResult result) = migrated;
        ConfigResult check = ConfigLoader.Bind(yaml);
        if (!check.IsValid)
        {
            // The mapper checks every value against the table: this is a bug in it, not in the input.
            foreach (ConfigError e in check.Errors)
            {
                Console.Error.WriteLine(e.Format("(migrated configuration)"));
            }
            Console.Error.WriteLine("appliance migrate: the migrated configuration does not validate; please report this with the chrony.conf");
            return Program.ExitConfigError;
        }
        string report = json ? Json(file.Name, result) : Text(result);
        try
        {
            if (output is null)
            {
                Console.Out.Write(yaml);
            }
            else
            {
                File.WriteAllText(output.FullName, yaml);
            }
            if (reportFile is null)
            {
                Console.Error.Write(report);
            }
            else
            {
                File.WriteAllText(reportFile.FullName, report);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"appliance migrate: cannot write: {e.Message}");
            return Program.ExitConfigError;
        }
        int notMapped = result.Count(MigrationOutcome.NotMapped);
        if (notMapped > 0)
        {
            Console.Error.WriteLine($"appliance migrate: {notMapped} directive(s) not mapped: read them in the report before serving on this configuration");
            return ExitNotMapped;
        }
        return 0;
    }

    /// <summary>One line per note, then the counts.</summary>
    public static string Text(MigrationResult result)
    {
        var text = new StringBuilder();
        foreach (MigrationNote note in result.Notes)
        {
            text.Append(note).Append('\n');
        }
        text.Append($"{result.Notes.Count} notes: {result.Count(MigrationOutcome.Mapped)} mapped, {result.Count(MigrationOutcome.MappedWithDifference)} mapped with a difference, "
            + $"{result.Count(MigrationOutcome.NoCounterpart)} no counterpart needed, {result.Count(MigrationOutcome.NotMapped)} not mapped\n");
        return text.ToString();
    }

    /// <summary>{ "file", "counts": {...}, "notes": [{ "file", "line", "directive", "outcome", "message" }] }; outcome is mapped, different, none or not-mapped.</summary>
    public static string Json(string file, MigrationResult result)
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            writer.WriteStartObject();
            writer.WriteString("file", file);
            writer.WriteStartObject("counts");
            foreach (MigrationOutcome outcome in Enum.GetValues<MigrationOutcome>())
            {
                writer.WriteNumber(JsonName(outcome), result.Count(outcome));
            }
            writer.WriteEndObject();
            writer.WriteStartArray("notes");
            foreach (MigrationNote note in result.Notes)
            {
                writer.WriteStartObject();
                writer.WriteString("file", note.File);
                writer.WriteNumber("line", note.Line);
                writer.WriteString("directive", note.Directive);
                writer.WriteString("outcome", JsonName(note.Outcome));
                writer.WriteString("message", note.Message);
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    public static string JsonName(MigrationOutcome outcome) => outcome switch
    {
        MigrationOutcome.Mapped => "mapped",
        MigrationOutcome.MappedWithDifference => "different",
        MigrationOutcome.NoCounterpart => "none",
        MigrationOutcome.NotMapped => "not-mapped",
        _ => throw new ArgumentOutOfRangeException(nameof(outcome)),
    };
}
