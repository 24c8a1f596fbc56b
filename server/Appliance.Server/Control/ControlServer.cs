using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Appliance.Server.Configuration;
using Appliance.Server.Hosting;
using Appliance.Server.Ntp;
using Appliance.Sources;
using Microsoft.Extensions.Logging;

namespace Appliance.Server.Control;

/// <summary>Who is on the other end of a control connection, from the kernel (SO_PEERCRED, unix(7)).</summary>
public readonly record struct PeerCredentials(int Pid, uint Uid, uint Gid);

/// <summary>
/// The control socket: a Unix stream socket, mode 0660, so the service's user and group may connect.
/// Each connection carries one request (one JSON line, at most <see cref="MaxRequestBytes"/>) and one
/// answer, then closes. Everything about a connection is bounded: the request in size, the whole
/// exchange in time (<see cref="RequestTimeout"/> to send the request, <see cref="AnswerTimeout"/> to
/// answer it), the open connections in number (<see cref="MaxConnections"/>); a malformed, oversized or
/// slow request gets an error and a closed connection, never a stuck daemon. Verbs that change state
/// are only for the socket's owner or root (<see cref="ControlVerbs.ChangesState"/>), checked with
/// SO_PEERCRED.
/// </summary>
public sealed class ControlServer : IAsyncDisposable
{
    public const int MaxRequestBytes = 4096;
    public const int MaxConnections = 8;

    /// <summary>Connections the kernel queues before accept: beyond it a client's connect fails with EAGAIN.</summary>
    private const int Backlog = 64;
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(30);

    /// <summary>How long an answered connection waits for the client to close before it is closed anyway.</summary>
    private static readonly TimeSpan s_linger = TimeSpan.FromSeconds(1);

    private const int SolSocket = 1;
    private const int SoPeerCred = 17;

    private readonly Socket _listener;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stop = new();
    private readonly uint _ownerUid;
    private readonly LogSummary _acceptFailures;
    private ControlVerbs? _verbs;
    private Task _accepting = Task.CompletedTask;
    private int _open;

    private ControlServer(Socket listener, string path, ILogger logger)
    {
        _listener = listener;
        Path = path;
        _logger = logger;
        _ownerUid = EffectiveUid();
        _acceptFailures = new LogSummary(logger, LogLevel.Warning, "control socket accept failures");
    }

    public string Path { get; }

    /// <summary>
    /// Binds the socket (before anything serves, like every other socket). A socket file left by a
    /// daemon that died is replaced; one that another running appliance answers on is an error when
    /// the path was written in the configuration, and a warning (no control socket) for <c>auto</c>.
    /// Returns null when the socket is off or (auto) cannot be had.
    /// </summary>
    /// <param name="user">The configured service user, named with the chown that fixes a directory it may not use.</param>
    public static ControlServer? Bind(ControlConfig config, ILogger logger, string? user = null)
    {
        if (config.Socket is not { } path)
        {
            return null;
        }
        try
        {
            return BindAt(path, logger, user);
        }
        catch (ControlBindException e) when (!config.Explicit)
        {
            logger.LogWarning("no control socket: {Problem}; set control.socket to give this appliance its own", e.Message);
            return null;
        }
        catch (ControlBindException e)
        {
            throw new StartupFailedException($"control socket {path}: {e.Message}", e);
        }
    }

    private static ControlServer BindAt(string path, ILogger logger, string? user)
    {
        string directory = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        try
        {
            // Only the service's user and group may reach the socket (the socket's own mode says the rest).
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ControlBindException($"cannot create {directory}: {e.Message} (create it for the service's user, or run under systemd with RuntimeDirectory=appliance)"
                + ServiceUser.OwnershipFix(user, directory));
        }
        if (File.Exists(path) || Directory.Exists(path))
        {
            if ((File.GetAttributes(path) & FileAttributes.Directory) != 0 || !IsSocket(path))
            {
                throw new ControlBindException("the path exists and is not a socket (remove it, or choose another path)");
            }
            if (Answers(path))
            {
                throw new ControlBindException("another running appliance answers on it (stop it first)");
            }
            File.Delete(path); // left by a daemon that is gone
        }
        // Bound under a temporary name, given its mode, then renamed into place: the socket is never
        // reachable with the mode the umask gave it.
        string temporary = $"{path}.{Environment.ProcessId}.tmp";
        File.Delete(temporary);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(temporary));
            File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            listener.Listen(Backlog);
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException)
        {
            listener.Dispose();
            File.Delete(temporary);
            bool denied = e is UnauthorizedAccessException || e is SocketException { SocketErrorCode: SocketError.AccessDenied };
            throw new ControlBindException(e.Message + (denied ? ServiceUser.OwnershipFix(user, directory) : ""));
        }
        return new ControlServer(listener, path, logger);
    }

    /// <summary>
    /// Whether the file at <paramref name="path"/> can be a socket left behind: sockets have no length.
    /// (.NET has no stat(2) file type; opening would block on a FIFO.) A file with content is never
    /// deleted, whatever a wrong control.socket says.
    /// </summary>
    private static bool IsSocket(string path) => new FileInfo(path).Length == 0;

    /// <summary>True when a process accepts connections on the socket at <paramref name="path"/>.</summary>
    private static bool Answers(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    /// <summary>Starts answering: the verbs run against the live server.</summary>
    public void Start(ControlVerbs verbs)
    {
        _verbs = verbs;
        _accepting = AcceptAsync(_stop.Token);
    }

    private async Task AcceptAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await _listener.AcceptAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException e)
            {
                // EMFILE and the like fail every accept at once: the first is logged, then a count a minute.
                if (_acceptFailures.Occurred(e.Message))
                {
                    _logger.LogWarning("control socket: accept failed: {Error}", e.Message);
                }
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(100), stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                continue;
            }
            if (Interlocked.Increment(ref _open) > MaxConnections)
            {
                Interlocked.Decrement(ref _open);
                _ = RefuseAsync(connection, "busy: too many control connections open; try again");
                continue;
            }
            _ = ServeAsync(connection, stop);
        }
    }

    private static async Task RefuseAsync(Socket connection, string error)
    {
        using (connection)
        {
            using var timeout = new CancellationTokenSource(RequestTimeout);
            await SendAsync(connection, ErrorAnswer(error), timeout.Token).ConfigureAwait(false);
        }
    }

    private async Task ServeAsync(Socket connection, CancellationToken stop)
    {
        // The slot is given back once the answer is sent, before the end of the stream that tells the
        // client so: a client that read its answer and connects again is served, not told "busy". The
        // bounded drain after it is not counted, like a refused connection's.
        int held = 1;
        void Release()
        {
            if (Interlocked.Exchange(ref held, 0) == 1)
            {
                Interlocked.Decrement(ref _open);
            }
        }
        try
        {
            using (connection)
            {
                byte[] answer = await AnswerAsync(connection, stop).ConfigureAwait(false);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
                timeout.CancelAfter(RequestTimeout);
                await SendAsync(connection, answer, timeout.Token, Release).ConfigureAwait(false);
            }
        }
        finally
        {
            Release();
        }
    }

    private async Task<byte[]> AnswerAsync(Socket connection, CancellationToken stop)
    {
        PeerCredentials peer = CredentialsOf(connection);
        byte[]? line;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
        {
            timeout.CancelAfter(RequestTimeout);
            try
            {
                line = await ReadLineAsync(connection, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return ErrorAnswer($"no complete request within {RequestTimeout.TotalSeconds:0} s (send one JSON line)");
            }
            catch (SocketException e)
            {
                return ErrorAnswer(e.Message);
            }
        }
        if (line is null)
        {
            return ErrorAnswer($"request too long (the limit is {MaxRequestBytes} bytes: one JSON line)");
        }
        (ControlRequest? request, byte[] refused) = ParseRequest(line);
        if (request is null)
        {
            return refused;
        }
        if (ControlVerbs.ChangesState(request.Verb) && peer.Uid != 0 && peer.Uid != _ownerUid)
        {
            return ErrorAnswer($"'{request.Verb}' changes the running appliance: only its user (uid {_ownerUid}) or root may ask for it (you are uid {peer.Uid}); run it as that user or with sudo");
        }
        if (ControlVerbs.ChangesState(request.Verb))
        {
            _logger.LogInformation("control: {Verb} asked by uid {Uid} (pid {Pid})", request.Verb, peer.Uid, peer.Pid);
        }
        using var answerTimeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        answerTimeout.CancelAfter(AnswerTimeout);
        try
        {
            return await _verbs!.ExecuteAsync(request, answerTimeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return ErrorAnswer(stop.IsCancellationRequested ? "the appliance is shutting down"
                : $"'{request.Verb}' did not finish within {AnswerTimeout.TotalSeconds:0} s");
        }
#pragma warning disable CA1031 // a verb's failure of any kind is answered and logged, never left to end the connection silently
        catch (Exception e)
#pragma warning restore CA1031
        {
            _logger.LogError(e, "control: {Verb} failed", request.Verb);
            return ErrorAnswer($"'{request.Verb}' failed inside the appliance: {e.Message} (the log has the details)");
        }
    }

    /// <summary>
    /// The request in one line (its newline taken off): the request with a known verb, or null and the
    /// error answer to send. Pure, so that it is fuzzed without a socket (tests/Appliance.Fuzz, target control).
    /// </summary>
    internal static (ControlRequest? Request, byte[] Error) ParseRequest(ReadOnlySpan<byte> line)
    {
        ControlRequest? request;
        try
        {
            request = JsonSerializer.Deserialize(line, ControlJson.Default.ControlRequest);
        }
        catch (JsonException e)
        {
            return (null, ErrorAnswer($"malformed request: {e.Message} (send one JSON object, e.g. {{\"verb\":\"status\"}})"));
        }
        if (request is null || !ControlVerbs.IsVerb(request.Verb))
        {
            return (null, ErrorAnswer($"unknown verb '{request?.Verb}': use one of {string.Join(", ", ControlVerbs.Verbs)}"));
        }
        return (request, []);
    }

    /// <summary>Reads up to a newline (or the end of the stream); null when the request exceeds <see cref="MaxRequestBytes"/>.</summary>
    private static async Task<byte[]?> ReadLineAsync(Socket connection, CancellationToken cancellationToken)
    {
        byte[] buffer = new byte[MaxRequestBytes + 1];
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n = await connection.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            int newline = Array.IndexOf(buffer, (byte)'\n', filled, n);
            filled += n;
            if (newline >= 0)
            {
                return buffer[..newline];
            }
        }
        return filled > MaxRequestBytes ? null : buffer[..filled];
    }

    /// <summary>
    /// Sends the answer and ends the connection. What the client sent beyond its request (or, refused,
    /// the request itself) is read and dropped first, bounded in bytes and by the caller's deadline:
    /// a Unix socket closed with unread data resets the peer, which would lose the answer.
    /// </summary>
    private static async Task SendAsync(Socket connection, byte[] answer, CancellationToken cancellationToken, Action? sent = null)
    {
        try
        {
            await connection.SendAsync(answer, SocketFlags.None, cancellationToken).ConfigureAwait(false);
            sent?.Invoke();
            connection.Shutdown(SocketShutdown.Send);
            using var linger = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            linger.CancelAfter(s_linger);
            byte[] sink = new byte[4096];
            for (int drained = 0; drained < 16 * MaxRequestBytes;)
            {
                int n = await connection.ReceiveAsync(sink, SocketFlags.None, linger.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                drained += n;
            }
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away or stopped reading: the connection is closed either way.
        }
    }

    internal static byte[] ErrorAnswer(string error) => ControlVerbs.Envelope(ok: false, ControlJson.Default.ControlError, new ControlError(error));

    private static PeerCredentials CredentialsOf(Socket connection)
    {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (unix(7)).
        Span<byte> ucred = stackalloc byte[12];
        int length = connection.GetRawSocketOption(SolSocket, SoPeerCred, ucred);
        if (length < 12)
        {
            return new PeerCredentials(0, uint.MaxValue, uint.MaxValue); // nobody: read-only verbs only
        }
        return new PeerCredentials(BinaryPrimitives.ReadInt32LittleEndian(ucred), BinaryPrimitives.ReadUInt32LittleEndian(ucred[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(ucred[8..]));
    }

    /// <summary>This process's effective uid (the owner of the socket it binds), from /proc/self/status.</summary>
    private static uint EffectiveUid()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                string[] ids = line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries);
                return uint.Parse(ids[1], System.Globalization.CultureInfo.InvariantCulture);
            }
        }
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(false);
        _stop.Dispose();
        _acceptFailures.Dispose();
        // Removed only when nobody answers on it any more: a successor may already have bound the path.
        if (File.Exists(Path) && !Answers(Path))
        {
            File.Delete(Path);
        }
    }

    private sealed class ControlBindException(string message) : Exception(message);
}
