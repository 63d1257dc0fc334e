using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace CookieProxy.Host.Control;

/// <summary>The control socket could not be reached or answered badly; the message is for the operator.</summary>
public sealed class ControlClientException(string message) : Exception(message);

/// <summary>
/// The client side of the control socket, for <c>cookieproxy stats</c>, <c>top</c> and <c>reload</c>: one connection,
/// one request line and one reply line per <see cref="Request"/>.
/// </summary>
public sealed class ControlClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[1 << 20];
    private int _length;

    private ControlClient(string path, Socket socket)
    {
        Path = path;
        _socket = socket;
    }

    public string Path { get; }

    /// <exception cref="ControlClientException">Nothing listens at <paramref name="path"/>, or we may not connect.</exception>
    public static ControlClient Connect(string path, TimeSpan timeout)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.ReceiveTimeout = (int)timeout.TotalMilliseconds;
            socket.SendTimeout = (int)timeout.TotalMilliseconds;
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return new ControlClient(path, socket);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            string hint = e.SocketErrorCode switch
            {
                SocketError.AddressNotAvailable or SocketError.ConnectionRefused =>
                    " (is cookieproxy running? an instance started with --control-socket PATH is reached with the same option)",
                SocketError.AccessDenied => " (the socket is mode 0660: run as its owner or a member of its group)",
                _ => "",
            };
            throw new ControlClientException($"cannot reach the control socket {path}: {e.Message}{hint}");
        }
    }

    /// <summary>Sends <c>{"command": command, ...}</c> and returns the reply's <c>result</c>.</summary>
    /// <exception cref="ControlClientException">No reply in time, a malformed reply, or an error reply.</exception>
    public JsonElement Request(string command, int? sources = null)
    {
        var request = new StringBuilder();
        request.Append("{\"command\":").Append(JsonSerializer.Serialize(command));
        if (sources is int n)
        {
            request.Append(",\"sources\":").Append(n);
        }
        request.Append("}\n");
        string line;
        try
        {
            _socket.Send(Encoding.UTF8.GetBytes(request.ToString()));
            line = ReadLine();
        }
        catch (SocketException e)
        {
            throw new ControlClientException($"control socket {Path}: {e.Message}");
        }
        try
        {
            using JsonDocument doc = JsonDocument.Parse(line);
            JsonElement root = doc.RootElement;
            if (root.TryGetProperty("ok", out JsonElement ok) && ok.ValueKind == JsonValueKind.True && root.TryGetProperty("result", out JsonElement result))
            {
                return result.Clone();
            }
            string error = root.TryGetProperty("error", out JsonElement e) ? e.ToString() : line;
            throw new ControlClientException(error);
        }
        catch (JsonException e)
        {
            throw new ControlClientException($"control socket {Path}: a reply that is not JSON ({e.Message})");
        }
    }

    private string ReadLine()
    {
        while (true)
        {
            int newline = _buffer.AsSpan(0, _length).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                string line = Encoding.UTF8.GetString(_buffer, 0, newline);
                _buffer.AsSpan(newline + 1, _length - newline - 1).CopyTo(_buffer);
                _length -= newline + 1;
                return line;
            }
            if (_length == _buffer.Length)
            {
                throw new ControlClientException($"control socket {Path}: a reply longer than {_buffer.Length} bytes");
            }
            int n = _socket.Receive(_buffer, _length, _buffer.Length - _length, SocketFlags.None);
            if (n == 0)
            {
                throw new ControlClientException($"control socket {Path}: closed before it answered");
            }
            _length += n;
        }
    }

    public void Dispose() => _socket.Dispose();
}
