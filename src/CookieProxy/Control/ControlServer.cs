using System.Net.Sockets;

namespace CookieProxy.Host.Control;

/// <summary>The control socket could not be opened; the message names the path and the reason.</summary>
public sealed class ControlSocketException(string message) : Exception(message);

/// <summary>
/// The control socket (<c>cookieproxy stats</c>, <c>top</c>, <c>reload</c>): a Unix stream socket, mode 0660, served
/// by one thread of its own (never a capture thread, never the thread pool). The thread waits in
/// <see cref="Socket.Select"/> on the listener and up to <see cref="MaxClients"/> connections, answers each request
/// line with <see cref="ControlHandler.Handle"/> and takes the once-a-second rate snapshot between. Everything it
/// reads is the capture threads' lock-free counters, so an answer takes well under a millisecond of its own time
/// whatever the capture threads are doing.
/// </summary>
public sealed class ControlServer : IDisposable
{
    public const string DefaultPath = "/run/cookieproxy/cookieproxy.sock";

    public const int MaxClients = 16;

    private const int SelectMicroseconds = 200_000;
    private const int IdleTimeoutMs = 60_000;

    private readonly Socket _listener;
    private readonly ControlHandler _handler;
    private readonly Action<string> _log;
    private readonly List<Client> _clients = [];
    private readonly List<Socket> _readable = [];
    private readonly Thread _thread;
    private volatile bool _stop;

    private ControlServer(string path, Socket listener, ControlHandler handler, Action<string> log)
    {
        Path = path;
        _listener = listener;
        _handler = handler;
        _log = log;
        _thread = new Thread(Run) { IsBackground = true, Name = "cookieproxy-control" };
    }

    public string Path { get; }

    /// <summary>Binds <paramref name="path"/> (creating its directory; replacing a stale socket a killed instance
    /// left) and starts serving.</summary>
    /// <exception cref="ControlSocketException">The path is in use by a running instance, is not a socket, or cannot be bound.</exception>
    public static ControlServer Start(string path, ControlHandler handler, Action<string> log)
    {
        ControlServer server = Open(path, handler, log);
        server.Start();
        return server;
    }

    /// <summary>Binds <paramref name="path"/> (as <see cref="Start(string, ControlHandler, Action{string})"/>) without serving yet.</summary>
    /// <exception cref="ControlSocketException">The path is in use by a running instance, is not a socket, or cannot be bound.</exception>
    public static ControlServer Open(string path, ControlHandler handler, Action<string> log)
    {
        string full = System.IO.Path.GetFullPath(path);
        return new ControlServer(full, Bind(full), handler, log);
    }

    /// <summary>Starts the serving thread and asks it once over the socket itself.</summary>
    public void Start()
    {
        _handler.Tick();
        _thread.Start();
        WarmUpOverTheSocket();
    }

    /// <summary>
    /// One stats request through the socket at start-up, so accept, receive and send are compiled before an operator
    /// asks during a flood (the host runs without tiered compilation: the first answer under a flood on a busy
    /// machine took over a second, every later one about a millisecond). A failure here is not an error: the real
    /// clients will say what is wrong.
    /// </summary>
    private void WarmUpOverTheSocket()
    {
        try
        {
            using ControlClient client = ControlClient.Connect(Path, TimeSpan.FromSeconds(5));
            client.Request("stats");
        }
        catch (ControlClientException)
        {
        }
    }

    private static Socket Bind(string path)
    {
        try
        {
            string? dir = System.IO.Path.GetDirectoryName(path);
            if (dir is not null && !Directory.Exists(dir))
            {
                if (OperatingSystem.IsWindows())
                {
                    Directory.CreateDirectory(dir);
                }
                else
                {
                    Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
                }
            }
            if (File.Exists(path))
            {
                RemoveStale(path);
            }
            var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                listener.Bind(new UnixDomainSocketEndPoint(path));
                if (!OperatingSystem.IsWindows())
                {
                    // rw for the owner and its group (the operators' group under systemd), nothing for others.
                    File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
                }
                listener.Listen(MaxClients);
                return listener;
            }
            catch
            {
                listener.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SocketException or ArgumentException)
        {
            throw new ControlSocketException($"{path}: {e.Message}");
        }
    }

    /// <summary>A socket file nobody listens on (a SIGKILLed instance's) goes; a live one or a real file stays.</summary>
    private static void RemoveStale(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            // Nobody listens. A socket file has no length; anything with content is somebody's file, not ours.
            if (new FileInfo(path).Length != 0)
            {
                throw new ControlSocketException($"{path}: exists and is not a socket");
            }
            File.Delete(path);
            return;
        }
        throw new ControlSocketException($"{path}: in use by another running cookieproxy (give each instance its own --control-socket)");
    }

    private void Run()
    {
        long nextTick = Environment.TickCount64 + 1000;
        try
        {
            _handler.WarmUp();
            while (!_stop)
            {
                _readable.Clear();
                _readable.Add(_listener);
                foreach (Client c in _clients)
                {
                    _readable.Add(c.Socket);
                }
                Socket.Select(_readable, null, null, SelectMicroseconds);
                long now = Environment.TickCount64;
                foreach (Socket s in _readable)
                {
                    if (s == _listener)
                    {
                        Accept(now);
                    }
                    else
                    {
                        Serve(_clients.Find(c => c.Socket == s)!, now);
                    }
                }
                _clients.RemoveAll(c =>
                {
                    bool done = c.Closed || now - c.LastActivityMs > IdleTimeoutMs;
                    if (done)
                    {
                        c.Socket.Dispose();
                    }
                    return done;
                });
                if (now >= nextTick)
                {
                    _handler.Tick();
                    nextTick = now + 1000;
                }
            }
        }
        catch (ObjectDisposedException) when (_stop)
        {
            // Disposed while stopping.
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            _log($"control socket {Path}: {e.Message}; `cookieproxy stats` will not reach this instance");
        }
        catch (Exception e)
        {
            // A bug of ours: the control socket goes, the proxy keeps running (an unhandled exception on this
            // thread would end the process, and with it every flow).
            _log($"control socket {Path}: bug: {e}; `cookieproxy stats` will not reach this instance");
        }
    }

    private void Accept(long now)
    {
        Socket s;
        try
        {
            s = _listener.Accept();
        }
        catch (SocketException)
        {
            return;    // the client went before we took it
        }
        if (_clients.Count >= MaxClients)
        {
            s.Send("{\"ok\":false,\"error\":\"too many control connections\"}\n"u8);
            s.Dispose();
            return;
        }
        // A client that stops reading must not stall the others: sends give up after a second.
        s.SendTimeout = 1000;
        s.Blocking = false;
        _clients.Add(new Client(s) { LastActivityMs = now });
    }

    private void Serve(Client c, long now)
    {
        int n;
        try
        {
            n = c.Socket.Receive(c.Buffer.AsSpan(c.Length), SocketFlags.None, out SocketError error);
            if (error == SocketError.WouldBlock)
            {
                return;
            }
            if (error != SocketError.Success || n == 0)
            {
                c.Closed = true;
                return;
            }
        }
        catch (ObjectDisposedException)
        {
            c.Closed = true;
            return;
        }
        c.Length += n;
        c.LastActivityMs = now;
        int start = 0;
        while (true)
        {
            int newline = c.Buffer.AsSpan(start, c.Length - start).IndexOf((byte)'\n');
            if (newline < 0)
            {
                break;
            }
            Reply(c, _handler.Handle(c.Buffer.AsSpan(start, newline)));
            start += newline + 1;
        }
        if (start > 0)
        {
            c.Buffer.AsSpan(start, c.Length - start).CopyTo(c.Buffer);
            c.Length -= start;
        }
        if (c.Length == c.Buffer.Length)
        {
            Reply(c, "{\"ok\":false,\"error\":\"request line too long\"}\n"u8.ToArray());
            c.Closed = true;
        }
    }

    private static void Reply(Client c, ReadOnlyMemory<byte> reply)
    {
        if (c.Closed)
        {
            return;
        }
        try
        {
            c.Socket.Blocking = true;
            ReadOnlySpan<byte> left = reply.Span;
            while (!left.IsEmpty)
            {
                left = left[c.Socket.Send(left)..];
            }
            c.Socket.Blocking = false;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            c.Closed = true;
        }
    }

    public void Dispose()
    {
        _stop = true;
        if (_thread.IsAlive)
        {
            _thread.Join();
        }
        foreach (Client c in _clients)
        {
            c.Socket.Dispose();
        }
        _clients.Clear();
        _listener.Dispose();
        try
        {
            File.Delete(Path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left behind; the next instance replaces a stale socket anyway.
        }
    }

    private sealed class Client(Socket socket)
    {
        public Socket Socket { get; } = socket;
        public byte[] Buffer { get; } = new byte[ControlHandler.MaxRequestBytes];
        public int Length { get; set; }
        public long LastActivityMs { get; set; }
        public bool Closed { get; set; }
    }
}
