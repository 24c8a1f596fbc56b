using System.Text.Json;
using Appliance.Server.Control;

namespace Appliance.Fuzz.Targets;

/// <summary>
/// The control socket's request parser (<c>ControlServer.ParseRequest</c>): the input is what a client
/// sends, framed as the server frames it (up to the first newline, refused unparsed past
/// <see cref="ControlServer.MaxRequestBytes"/>). Invariants: no exception; either a request with a
/// known verb, or an error answer that is one JSON envelope <c>{"ok": false, "data": {"error": ...}}</c>.
/// </summary>
public static class ControlTarget
{
    public const int MaxInput = ControlServer.MaxRequestBytes + 1;

    public static void Run(ReadOnlySpan<byte> input)
    {
        int newline = input.IndexOf((byte)'\n');
        ReadOnlySpan<byte> line = newline >= 0 ? input[..newline] : input;
        if (line.Length > ControlServer.MaxRequestBytes)
        {
            return;
        }
        (ControlRequest? request, byte[] error) = ControlServer.ParseRequest(line);
        if (request is not null)
        {
            InvariantViolatedException.Check(ControlVerbs.IsVerb(request.Verb) && error.Length == 0, $"a request for '{request.Verb}'");
            return;
        }
        using JsonDocument answer = JsonDocument.Parse(error);
        JsonElement root = answer.RootElement;
        InvariantViolatedException.Check(root.GetProperty("ok").ValueKind == JsonValueKind.False
            && root.GetProperty("data").GetProperty("error").ValueKind == JsonValueKind.String, "an error answer that is not an error envelope");
    }
}
