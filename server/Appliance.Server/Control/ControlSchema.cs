using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using System.Text.Json.Serialization.Metadata;

namespace Appliance.Server.Control;

/// <summary>
/// The JSON schema of every verb's <c>--json</c> output, exported from the report records themselves
/// (System.Text.Json's JsonSchemaExporter), so the schema in docs/control.md cannot drift from what
/// the daemon writes; a test checks the document and validates real answers against it.
/// </summary>
public static class ControlSchema
{
    /// <summary>The name of the error report in <see cref="All"/> and <see cref="For"/>.</summary>
    public const string Error = "error";

    /// <summary>Each verb with the schema of its report; <see cref="Error"/>: what any verb answers when it fails.</summary>
    public static IReadOnlyList<(string[] Verbs, JsonNode Schema)> All { get; } =
    [
        (["status"], Of(ControlJson.Default.StatusReport)),
        (["sources"], Of(ControlJson.Default.SourcesReport)),
        (["clients"], Of(ControlJson.Default.ClientsReport)),
        (["serverstats"], Of(ControlJson.Default.ServerStatsReport)),
        (["keys"], Of(ControlJson.Default.KeysReport)),
        (["reload", "rotate-keys"], Of(ControlJson.Default.ActionReport)),
        ([Error], Of(ControlJson.Default.ControlError)),
    ];

    /// <summary>The schema for <paramref name="verb"/>'s report.</summary>
    public static JsonNode For(string verb) => All.First(e => e.Verbs.Contains(verb)).Schema;

    private static JsonNode Of<T>(JsonTypeInfo<T> info) => JsonSchemaExporter.GetJsonSchemaAsNode(info, new JsonSchemaExporterOptions
    {
        TreatNullObliviousAsNonNullable = true,
        TransformSchemaNode = (context, schema) =>
        {
            // Every property is always written (null where there is no value): say so.
            if (context.TypeInfo.Kind == JsonTypeInfoKind.Object && schema is JsonObject obj && obj["properties"] is JsonObject properties
                && context.PropertyInfo is null)
            {
                obj["required"] = new JsonArray([.. properties.Select(p => (JsonNode)JsonValue.Create(p.Key)!)]);
                obj["additionalProperties"] = false;
            }
            return schema;
        },
    });

    /// <summary>The generated part of docs/control.md.</summary>
    public static string Markdown()
    {
        var text = new StringBuilder();
        var options = new JsonSerializerOptions { WriteIndented = true };
        foreach ((string[] verbs, JsonNode schema) in All)
        {
            string heading = verbs[0] == Error ? "any verb, when it fails (`ok: false`)" : string.Join(", ", verbs.Select(v => $"`{v}`"));
            text.Append("### ").Append(heading).Append("\n\n```json\n").Append(schema.ToJsonString(options)).Append("\n```\n\n");
        }
        return text.ToString();
    }
}
