using System.Net.Sockets;

namespace CookieProxy.Host.Backend;

/// <summary>
/// The owner (capture) thread's event loop for backend readability: a socket that ran dry is watched there,
/// and the owner pumps its flow when it turns readable, with no thread-pool hop (Linux: epoll). Owner thread only.
/// </summary>
public interface IBackendReadiness
{
    /// <summary>
    /// Watch <paramref name="socket"/> once for data, EOF or error, then pump <paramref name="owner"/>'s flow and
    /// call <see cref="BackendConnection.OnReady"/>. False when it cannot (the caller waits on the thread pool).
    /// </summary>
    bool ArmReadable(Socket socket, object owner);

    /// <summary>
    /// Watch <paramref name="socket"/> once for writability or error (the end of a non-blocking connect), then pump
    /// <paramref name="owner"/>'s flow and call <see cref="BackendConnection.OnReady"/>. False when it cannot.
    /// </summary>
    bool ArmWritable(Socket socket, object owner) => false;

    /// <summary>
    /// Watch <paramref name="socket"/> for the rest of its life, edge-triggered: every arrival of data, EOF or an error
    /// pumps <paramref name="owner"/>'s flow and calls <see cref="BackendConnection.OnReady"/> (with the hang-up bit),
    /// with no re-arm. False when it cannot (the caller arms one-shot waits instead).
    /// </summary>
    bool WatchReadable(Socket socket, object owner) => false;
}
