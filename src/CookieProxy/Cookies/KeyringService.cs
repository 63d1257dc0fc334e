using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Cookies;

/// <summary>
/// The cookie key: read from --key-file (shared by instances that must accept each other's cookies) or fresh
/// CSPRNG bytes (cookies then die with the process). Opened first: the capture and XDP services build their
/// codecs from <see cref="Codec"/>.
/// </summary>
public sealed class KeyringService : IHostService
{
    private readonly string? _keyFile;
    private readonly int _slotSeconds;
    private readonly ILogger _log;
    private SynCookieCodec? _codec;

    public KeyringService(string? keyFile, int slotSeconds, ILogger log)
    {
        _keyFile = keyFile;
        _slotSeconds = slotSeconds;
        _log = log;
    }

    public string Name => "cookie key";

    /// <summary>"random" or "from FILE", for the start-up line.</summary>
    public string Description => _keyFile is null ? "random" : "from " + _keyFile;

    /// <summary>The codec of the current key (after Open).</summary>
    public SynCookieCodec Codec => _codec ?? throw new InvalidOperationException("the key is read in Open");

    public void Open()
    {
        SipKey key;
        if (_keyFile is null)
        {
            key = CookieKey.Generate();
        }
        else
        {
            string text;
            try
            {
                text = File.ReadAllText(_keyFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new HostStartException($"--key-file {_keyFile}: {e.Message}", ExitCodes.Usage);
            }
            if (!CookieKey.TryParse(text, out key, out string error))
            {
                throw new HostStartException($"--key-file {_keyFile}: {error} (create one with `cookieproxy genkey FILE`)", ExitCodes.Usage);
            }
        }
        _codec = new SynCookieCodec(key, _slotSeconds);
    }
}
