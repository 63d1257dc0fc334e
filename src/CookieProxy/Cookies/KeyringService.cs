using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Cookies;

/// <summary>
/// The cookie keys: read from --key-file (shared by instances that must accept each other's cookies; it may hold
/// the previous key too, see <see cref="CookieKey"/>) or fresh CSPRNG bytes (cookies then die with the process).
/// Opened first: the capture and XDP services build on <see cref="Codec"/>. A reload re-reads the file; when the
/// current key changed, the one before stays valid (the file's previous key, or else the key we had), so the
/// cookies already handed out still complete their handshakes.
/// </summary>
public sealed class KeyringService : IHostService
{
    private readonly int _slotSeconds;
    private readonly ILogger _log;
    private volatile SynCookieCodec? _codec;

    public KeyringService(string? keyFile, int slotSeconds, ILogger log)
    {
        KeyFile = keyFile;
        _slotSeconds = slotSeconds;
        _log = log;
    }

    public string Name => "cookie key";

    public string? KeyFile { get; private set; }

    /// <summary>"random" or "from FILE", for the start-up line.</summary>
    public string Description => KeyFile is null ? "random" : "from " + KeyFile;

    /// <summary>The codec of the current keys (after Open; replaced by a reload that changed the key).</summary>
    public SynCookieCodec Codec => _codec ?? throw new InvalidOperationException("the key is read in Open");

    public void Open()
    {
        if (KeyFile is null)
        {
            _codec = new SynCookieCodec(CookieKey.Generate(), _slotSeconds);
            return;
        }
        if (!KeyFiles.TryRead(KeyFile, out SipKey current, out SipKey? previous, out string? error))
        {
            throw new HostStartException($"--key-file {KeyFile}: {error}", ExitCodes.Usage);
        }
        WarnIfExposed(KeyFile);
        _codec = new SynCookieCodec(current, _slotSeconds, previous);
    }

    /// <summary>
    /// Reload: the codec for <paramref name="keyFile"/> as it is now, without installing it. Returns null with
    /// <paramref name="error"/> when the file cannot be used; <paramref name="changed"/> tells whether the
    /// current key differs from ours.
    /// </summary>
    public SynCookieCodec? Prepare(string? keyFile, out bool changed, out string? error)
    {
        SynCookieCodec now = Codec;
        changed = false;
        error = null;
        if (keyFile is null)
        {
            // Back to a random key would orphan every cookie in flight and the instances sharing the file: keep ours.
            return now;
        }
        if (!KeyFiles.TryRead(keyFile, out SipKey current, out SipKey? previous, out error))
        {
            error = $"--key-file {keyFile}: {error}";
            return null;
        }
        if (current == now.Key && previous == now.PreviousKey)
        {
            return now;
        }
        changed = current != now.Key;
        // The key we signed with until now stays valid unless the file names another previous key.
        return new SynCookieCodec(current, _slotSeconds, previous ?? (changed ? now.Key : now.PreviousKey));
    }

    /// <summary>Reload: installs what <see cref="Prepare"/> returned.</summary>
    public void Commit(string? keyFile, SynCookieCodec codec, bool changed)
    {
        if (keyFile is not null)
        {
            KeyFile = keyFile;
            WarnIfExposed(keyFile);
        }
        if (changed)
        {
            HostLog.KeyRotated(_log, keyFile ?? "");
        }
        _codec = codec;
    }

    private void WarnIfExposed(string path)
    {
        if (KeyFiles.ReadableByOthers(path, out UnixFileMode mode) is string who)
        {
            HostLog.KeyFileExposed(_log, path, who, Convert.ToString((int)mode, 8));
        }
    }
}
