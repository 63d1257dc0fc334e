using System.Net.Sockets;
using System.Text;

namespace CookieProxy.Host.Os;

/// <summary>
/// sd_notify(3) without libsystemd: one datagram per state change to the socket systemd names in $NOTIFY_SOCKET
/// (a path, or an abstract name written with a leading '@'). Does nothing when not started by systemd with
/// Type=notify. READY=1 once the capture is open, STOPPING=1 when the drain begins, RELOADING=1 (with
/// MONOTONIC_USEC, as Type=notify-reload wants) then READY=1 around a reload.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;

    public SystemdNotifier()
        : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET"))
    {
    }

    public SystemdNotifier(string? notifySocket)
    {
        if (string.IsNullOrEmpty(notifySocket) || !OperatingSystem.IsLinux())
        {
            return;
        }
        string path = notifySocket[0] == '@' ? "\0" + notifySocket[1..] : notifySocket;
        try
        {
            _endpoint = new UnixDomainSocketEndPoint(path);
            _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        }
        catch (Exception e) when (e is SocketException or ArgumentException)
        {
            _socket?.Dispose();
            _socket = null;
        }
    }

    /// <summary>True when $NOTIFY_SOCKET named a socket we could open.</summary>
    public bool Enabled => _socket is not null;

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}\nMAINPID={Environment.ProcessId}");

    public void Stopping(string status) => Send($"STOPPING=1\nSTATUS={status}");

    public void Reloading() =>
        Send($"RELOADING=1\nMONOTONIC_USEC={(long)(System.Diagnostics.Stopwatch.GetTimestamp() * (1_000_000.0 / System.Diagnostics.Stopwatch.Frequency))}");

    public void Status(string status) => Send($"STATUS={status}");

    /// <summary>Sends one notification; false when not under systemd or the send failed (never throws).</summary>
    public bool Send(string state)
    {
        if (_socket is null)
        {
            return false;
        }
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _endpoint!);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
    }

    public void Dispose() => _socket?.Dispose();
}
