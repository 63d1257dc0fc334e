using System.Globalization;
using System.Net;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Os;

/// <summary>
/// Refuses a second instance on the same interface and endpoint: two would answer the same SYNs with different
/// cookies (unless they share a key file) and fight over the drop rule. One lock file per protected endpoint under
/// --run-dir, <c>{netns}-{interface}-{address}-{port}.lock</c>, held with an exclusive flock(2) (.NET takes one for
/// <see cref="FileShare.None"/>) for the life of the process: the kernel drops it when the process dies, however
/// it dies, so a stale file of a dead process never blocks. The network namespace is part of the name because
/// the same interface name in two namespaces is two interfaces. A sidecar <c>.owner</c> file names the holder
/// for the message.
/// </summary>
public sealed class InstanceLock : IHostService
{
    private readonly string _directory;
    private readonly string _interface;
    private readonly Dictionary<IPEndPoint, (FileStream Lock, string Path)> _held = new();

    public InstanceLock(string directory, string interfaceName, IEnumerable<IPEndPoint> endpoints)
    {
        _directory = directory;
        _interface = interfaceName;
        Endpoints = [.. endpoints];
    }

    public string Name => "instance lock";

    public IReadOnlyList<IPEndPoint> Endpoints { get; private set; }

    public void Open()
    {
        try
        {
            Directory.CreateDirectory(_directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HostStartException($"--run-dir {_directory}: {e.Message} (the instance locks live there; systemd: RuntimeDirectory=cookieproxy)", ExitCodes.Usage);
        }
        foreach (IPEndPoint ep in Endpoints)
        {
            string? error = TryAcquire(ep);
            if (error is not null)
            {
                throw new HostStartException(error);
            }
        }
    }

    /// <summary>Reload: takes the locks of added endpoints and releases those of removed ones. Returns the first
    /// endpoint another instance holds (then nothing changed), or null.</summary>
    public string? Update(IReadOnlyList<IPEndPoint> endpoints)
    {
        var added = new List<IPEndPoint>();
        foreach (IPEndPoint ep in endpoints)
        {
            if (_held.ContainsKey(ep))
            {
                continue;
            }
            string? error = TryAcquire(ep);
            if (error is not null)
            {
                foreach (IPEndPoint a in added)
                {
                    Release(a);
                }
                return error;
            }
            added.Add(ep);
        }
        foreach (IPEndPoint ep in _held.Keys.ToArray())
        {
            if (!endpoints.Contains(ep))
            {
                Release(ep);
            }
        }
        Endpoints = [.. endpoints];
        return null;
    }

    private string? TryAcquire(IPEndPoint ep)
    {
        string path = LockPath(_directory, _interface, ep);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (UnauthorizedAccessException e)
        {
            return $"--run-dir {_directory}: {e.Message}";
        }
        catch (IOException)
        {
            string holder = ReadOwner(path) ?? "another cookieproxy process";
            return $"{ep} on {_interface} is already protected by {holder} (lock {path}); stop it first, or protect another endpoint";
        }
        try
        {
            File.WriteAllText(path + ".owner", string.Create(CultureInfo.InvariantCulture, $"pid {Environment.ProcessId}\n"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Only the message of a refused second instance needs it.
        }
        _held[ep] = (stream, path);
        return null;
    }

    private static string? ReadOwner(string path)
    {
        try
        {
            string text = File.ReadAllText(path + ".owner").Trim();
            return text.Length == 0 ? null : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private void Release(IPEndPoint ep)
    {
        if (_held.Remove(ep, out var held))
        {
            try
            {
                File.Delete(held.Path + ".owner");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // left behind: harmless, rewritten by the next holder
            }
            // The lock file itself stays: deleting it while another process waits to open it would let two hold
            // "the" lock on two different inodes.
            held.Lock.Dispose();
        }
    }

    public void Close()
    {
        foreach (IPEndPoint ep in _held.Keys.ToArray())
        {
            Release(ep);
        }
    }

    /// <summary>The lock file of one endpoint: {dir}/{netns}-{interface}-{address}-{port}.lock.</summary>
    public static string LockPath(string directory, string interfaceName, IPEndPoint endpoint)
    {
        string address = endpoint.Address.ToString().Replace(':', '_');
        return Path.Combine(directory, string.Create(CultureInfo.InvariantCulture,
            $"{NetworkNamespace()}-{Sanitize(interfaceName)}-{address}-{endpoint.Port}.lock"));
    }

    /// <summary>The network namespace's inode ("net:[4026531840]" → "net4026531840"), or "host" where there is none.</summary>
    public static string NetworkNamespace()
    {
        try
        {
            string? linkText = new FileInfo("/proc/self/ns/net").LinkTarget;
            if (linkText is not null)
            {
                return "net" + new string(linkText.Where(char.IsDigit).ToArray());
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // not Linux, or no /proc
        }
        return "host";
    }

    private static string Sanitize(string name) => new(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());
}
