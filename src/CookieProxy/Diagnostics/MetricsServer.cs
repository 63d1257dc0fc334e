using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CookieProxy.Host.Control;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// <c>--metrics-listen ADDR:PORT</c>: serves <c>GET /metrics</c> (Prometheus text, written by prometheus-net:
/// <see cref="PrometheusMetrics"/>) on a thread of its own. A minimal HTTP/1.1 responder, one connection at a time with a two-second budget each
/// (a scraper is one client a few times a minute; a stuck one cannot hold the thread): every reply closes the
/// connection. Anything but GET or HEAD of /metrics gets 404 or 405.
/// <para>
/// Our responder rather than prometheus-net's <c>MetricServer</c>: that one is an <c>HttpListener</c> on a URL
/// prefix whose <c>Start</c> both binds and serves (we bind in <see cref="Open"/>, before the capture opens, so a
/// taken address is exit 2 at start), answers every method (POST /metrics is 200), and runs each request as a
/// thread-pool task with no deadline for a scraper that sends nothing. The library writes the body into our
/// buffer; this class keeps only the socket and the HTTP framing.
/// </para>
/// </summary>
public sealed class MetricsServer : IDisposable
{
    private const int MaxRequestBytes = 8192;
    private const int ClientBudgetMs = 2000;

    private readonly Socket _listener;
    private readonly Thread _thread;
    private readonly byte[] _request = new byte[MaxRequestBytes];
    private readonly PrometheusMetrics _metrics;
    private readonly MemoryStream _body = new(16 * 1024);
    private volatile bool _stop;

    private MetricsServer(Socket listener, ProxyView view)
    {
        _listener = listener;
        _metrics = new PrometheusMetrics(view, ProxyView.Version);
        _thread = new Thread(Run) { IsBackground = true, Name = "cookieproxy-metrics" };
    }

    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Scrapes answered so far.</summary>
    public long Scrapes { get; private set; }

    /// <exception cref="SocketException">The address cannot be bound (in use, not ours).</exception>
    public static MetricsServer Start(IPEndPoint endpoint, ProxyView view)
    {
        MetricsServer server = Open(endpoint, view);
        server.Start();
        return server;
    }

    /// <summary>Starts the serving thread.</summary>
    public void Start() => _thread.Start();

    /// <summary>Binds <paramref name="endpoint"/> without serving yet.</summary>
    /// <exception cref="SocketException">The address cannot be bound (in use, not ours).</exception>
    public static MetricsServer Open(IPEndPoint endpoint, ProxyView view)
    {
        var listener = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any))
            {
                listener.DualMode = true;
            }
            listener.Bind(endpoint);
            listener.Listen(16);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
        return new MetricsServer(listener, view);
    }

    private void Run()
    {
        // Compiled before the first scrape (the host runs without tiered compilation; see ControlHandler.WarmUp).
        _metrics.WriteTo(Stream.Null);
        while (!_stop)
        {
            Socket client;
            try
            {
                if (!_listener.Poll(200_000, SelectMode.SelectRead))
                {
                    continue;
                }
                client = _listener.Accept();
            }
            catch (SocketException)
            {
                continue;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            using (client)
            {
                try
                {
                    Serve(client);
                }
                catch (Exception e) when (e is SocketException or IOException or ObjectDisposedException)
                {
                    // The scraper went away or was too slow; the next scrape starts afresh.
                }
                catch (Exception e)
                {
                    // A bug of ours: this scrape fails, the proxy (and the next scrape) go on.
                    TryRespond(client, "500 Internal Server Error", e.GetType().Name + "\n");
                }
            }
        }
    }

    private void Serve(Socket client)
    {
        client.ReceiveTimeout = ClientBudgetMs;
        client.SendTimeout = ClientBudgetMs;
        long deadline = Environment.TickCount64 + ClientBudgetMs;
        int length = 0;
        int headerEnd;
        while ((headerEnd = _request.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (length == _request.Length || Environment.TickCount64 > deadline)
            {
                Respond(client, "431 Request Header Fields Too Large", "text/plain", "request too large or too slow\n"u8, head: false);
                return;
            }
            int n = client.Receive(_request, length, _request.Length - length, SocketFlags.None);
            if (n == 0)
            {
                return;
            }
            length += n;
        }

        // Request line: METHOD SP TARGET SP VERSION (RFC 9112 3).
        ReadOnlySpan<byte> line = _request.AsSpan(0, _request.AsSpan(0, headerEnd + 2).IndexOf("\r\n"u8));
        int sp1 = line.IndexOf((byte)' ');
        int sp2 = sp1 < 0 ? -1 : line[(sp1 + 1)..].IndexOf((byte)' ');
        if (sp1 <= 0 || sp2 <= 0)
        {
            Respond(client, "400 Bad Request", "text/plain", "bad request line\n"u8, head: false);
            return;
        }
        ReadOnlySpan<byte> method = line[..sp1];
        ReadOnlySpan<byte> target = line.Slice(sp1 + 1, sp2);
        int query = target.IndexOf((byte)'?');
        ReadOnlySpan<byte> path = query < 0 ? target : target[..query];
        bool head = method.SequenceEqual("HEAD"u8);
        if (!head && !method.SequenceEqual("GET"u8))
        {
            Respond(client, "405 Method Not Allowed", "text/plain", "GET or HEAD /metrics\n"u8, head: false, allow: true);
            return;
        }
        if (!path.SequenceEqual("/metrics"u8))
        {
            Respond(client, "404 Not Found", "text/plain", "the metrics are at /metrics\n"u8, head);
            return;
        }

        _body.SetLength(0);
        _metrics.WriteTo(_body);
        Respond(client, "200 OK", PrometheusMetrics.ContentType, _body.GetBuffer().AsSpan(0, (int)_body.Length), head);
        Scrapes++;
    }

    private static void Respond(Socket client, string status, string contentType, ReadOnlySpan<byte> body, bool head, bool allow = false)
    {
        string header = $"HTTP/1.1 {status}\r\nContent-Type: {contentType}\r\nContent-Length: {body.Length.ToString(CultureInfo.InvariantCulture)}\r\n"
            + (allow ? "Allow: GET, HEAD\r\n" : "") + "Connection: close\r\n\r\n";
        client.Send(Encoding.ASCII.GetBytes(header));
        if (!head)
        {
            while (!body.IsEmpty)
            {
                body = body[client.Send(body)..];
            }
        }
        client.Shutdown(SocketShutdown.Send);
    }

    private static void TryRespond(Socket client, string status, string text)
    {
        try
        {
            Respond(client, status, "text/plain", Encoding.UTF8.GetBytes(text), head: false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Gone already.
        }
    }

    public void Dispose()
    {
        _stop = true;
        if (_thread.IsAlive)
        {
            _thread.Join();
        }
        _listener.Dispose();
    }
}
