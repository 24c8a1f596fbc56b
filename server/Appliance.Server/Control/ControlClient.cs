using System.Net.Sockets;
using System.Text.Json;

namespace Appliance.Server.Control;

/// <summary>The control socket could not be reached: the message says why, and what to do.</summary>
public sealed class ControlUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One answer from the daemon: whether it succeeded, and the report (or the error) as JSON text.</summary>
/// <param name="Error">When the daemon refused the request or it failed before the verb ran: why (the <see cref="ControlError"/>); null for a report.</param>
public sealed record ControlAnswer(bool Ok, string Data, string? Error);

/// <summary>The CLI's side of the control socket: connect, send one request line, read the answer to the end.</summary>
public static class ControlClient
{
    /// <summary>Enough for the largest report (clients --limit 10000); a longer answer is not a daemon's.</summary>
    public const int MaxAnswerBytes = 16 << 20;

    public static async Task<ControlAnswer> RequestAsync(string socketPath, ControlRequest request, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), deadline.Token).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            throw new ControlUnavailableException(e.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused or SocketError.AddressFamilyNotSupported =>
                    $"no appliance is listening on {socketPath} (start it: `systemctl start appliance` or `appliance serve`; or give its socket with --socket PATH)",
                SocketError.WouldBlock or SocketError.TryAgain =>
                    $"the appliance on {socketPath} is busy (too many control connections); try again",
                SocketError.AccessDenied =>
                    $"permission denied on {socketPath} (run as the appliance's user, a member of its group, or root)",
                _ => $"cannot connect to {socketPath}: {e.Message}",
            }, e);
        }
        byte[] line = [.. JsonSerializer.SerializeToUtf8Bytes(request, ControlJsonCompact.Default.ControlRequest), (byte)'\n'];
        byte[] answer;
        try
        {
            await socket.SendAsync(line, SocketFlags.None, deadline.Token).ConfigureAwait(false);
            answer = await ReadToEndAsync(socket, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ControlUnavailableException($"the appliance on {socketPath} did not answer within {timeout.TotalSeconds:0} s");
        }
        catch (SocketException e)
        {
            throw new ControlUnavailableException($"the connection to {socketPath} failed: {e.Message}", e);
        }
        try
        {
            using JsonDocument document = JsonDocument.Parse(answer);
            JsonElement root = document.RootElement;
            JsonElement data = root.GetProperty("data");
            bool ok = root.GetProperty("ok").GetBoolean();
            string? error = !ok && data.TryGetProperty("error", out JsonElement why) ? why.GetString() : null;
            return new ControlAnswer(ok, Indented(data), error);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ControlUnavailableException($"{socketPath} answered something that is not an appliance's answer ({e.Message})", e);
        }
    }

    /// <summary>The report on its own, indented from the left margin (in the envelope it is nested).</summary>
    private static string Indented(JsonElement data)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            data.WriteTo(writer);
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static async Task<byte[]> ReadToEndAsync(Socket socket, CancellationToken cancellationToken)
    {
        using var collected = new MemoryStream();
        byte[] buffer = new byte[64 * 1024];
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                return collected.ToArray();
            }
            if (collected.Length + n > MaxAnswerBytes)
            {
                throw new ControlUnavailableException($"the answer exceeds {MaxAnswerBytes} bytes");
            }
            collected.Write(buffer, 0, n);
        }
    }
}

/// <summary>The request on the wire: one compact line.</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
[System.Text.Json.Serialization.JsonSerializable(typeof(ControlRequest))]
internal sealed partial class ControlJsonCompact : System.Text.Json.Serialization.JsonSerializerContext;
