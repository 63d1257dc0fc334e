using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Cookies;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Tcp;
using CookieProxy.Wire;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Tests.Host;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class KeyRotationTests : IDisposable
{
    private const long Now = 1_700_000_000_000;
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"cp-keys-{Guid.NewGuid():N}");

    public KeyRotationTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static FlowKey Tuple() => new(IpAddr.FromIPAddress(System.Net.IPAddress.Parse("198.18.0.2")), IpAddr.FromIPAddress(System.Net.IPAddress.Parse("198.18.0.1")), 40000, 80);

    private static TcpRepr AckFor(uint clientIsn, uint cookie) => new()
    {
        SrcPort = 40000,
        DstPort = 80,
        Seq = new SeqNumber(clientIsn + 1),
        Ack = new SeqNumber(cookie + 1),
        Flags = TcpFlags.Ack,
        Window = 502,
        Options = TcpOptionsRepr.None,
    };

    [Fact]
    public void ACookieMadeUnderThePreviousKeyStillValidatesAfterARotation()
    {
        SipKey old = CookieKey.Generate();
        SipKey fresh = CookieKey.Generate();
        uint cookie = new SynCookieCodec(old).Encode(Tuple(), 1234, default, Now, out _);

        var rotated = new SynCookieCodec(fresh, previousKey: old);
        Assert.Equal(DropReason.None, rotated.Validate(Tuple(), AckFor(1234, cookie), Now + 1000, out CookieDecoded decoded));
        Assert.Equal(cookie, decoded.LocalIsn);
        // Without the previous key the same ACK is refused: the rotation is what keeps it valid.
        Assert.Equal(DropReason.CookieInvalid, new SynCookieCodec(fresh).Validate(Tuple(), AckFor(1234, cookie), Now + 1000, out _));
        // New cookies are made under the new key only.
        uint newer = rotated.Encode(Tuple(), 99, default, Now, out _);
        Assert.Equal(DropReason.None, new SynCookieCodec(fresh).Validate(Tuple(), AckFor(99, newer), Now, out _));
        Assert.Equal(DropReason.CookieInvalid, new SynCookieCodec(old).Validate(Tuple(), AckFor(99, newer), Now, out _));
    }

    [Fact]
    public void APreviousKeyCookieStillExpiresWithItsSlot()
    {
        SipKey old = CookieKey.Generate();
        uint cookie = new SynCookieCodec(old).Encode(Tuple(), 1234, default, Now, out _);
        var rotated = new SynCookieCodec(CookieKey.Generate(), previousKey: old);
        Assert.NotEqual(DropReason.None, rotated.Validate(Tuple(), AckFor(1234, cookie), Now + 3 * 64_000, out _));
    }

    [Fact]
    public void TheKeyFileHoldsTheCurrentThenThePreviousKey()
    {
        SipKey a = CookieKey.Generate();
        SipKey b = CookieKey.Generate();
        string text = CookieKey.FormatKeyFile(a, b);
        Assert.True(CookieKey.TryParse(text, out SipKey current, out SipKey? previous, out _));
        Assert.Equal(a, current);
        Assert.Equal(b, previous);
        // The one-key file of before rotation existed parses as it did.
        Assert.True(CookieKey.TryParse("000102030405060708090a0b0c0d0e0f\n", out current, out previous, out _));
        Assert.Null(previous);
        Assert.False(CookieKey.TryParse(text + CookieKey.ToHex(a) + "\n", out _, out _, out string error));
        Assert.Contains("more than two keys", error);
    }

    [Fact]
    public void GenkeyRotateShiftsTheCurrentKeyToPreviousAndKeepsTheFileMode()
    {
        string path = Path.Combine(_dir, "key");
        (int code, _, string err) = CommandLine.Invoke(["genkey", path]);
        Assert.True(code == 0, err);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.True(KeyFiles.TryRead(path, out SipKey first, out SipKey? none, out _));
        Assert.Null(none);

        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        (code, string output, err) = CommandLine.Invoke(["genkey", "--rotate", path]);
        Assert.True(code == 0, err);
        Assert.Contains("rotated", output);
        Assert.True(KeyFiles.TryRead(path, out SipKey second, out SipKey? previous, out _));
        Assert.NotEqual(first, second);
        Assert.Equal(first, previous);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(path));
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
    }

    [Fact]
    public void RotatingAMissingOrBrokenFileSaysWhy()
    {
        (int code, _, string err) = CommandLine.Invoke(["genkey", "--rotate", Path.Combine(_dir, "none")]);
        Assert.NotEqual(0, code);
        Assert.Contains("genkey --rotate", err);
        string bad = Path.Combine(_dir, "bad");
        File.WriteAllText(bad, "zz\n");
        (code, _, err) = CommandLine.Invoke(["genkey", "--rotate", bad]);
        Assert.Equal(2, code);
        Assert.Contains("hex", err);
    }

    [Fact]
    public void AReloadThatSeesANewKeyKeepsTheOldOneValid()
    {
        string path = Path.Combine(_dir, "key");
        Assert.True(KeyFiles.TryWriteNew(path, out _));
        using var logs = new ConsoleLogProvider(TextWriter.Null, LogFormat.Plain, LogLevel.Information);
        var keys = new KeyringService(path, SynCookieCodec.DefaultSlotSeconds, logs.CreateLogger("k"));
        keys.Open();
        SipKey before = keys.Codec.Key;
        Assert.Same(keys.Codec, keys.Prepare(path, out bool changed, out _));
        Assert.False(changed);

        // Another instance's operator replaced the file with a fresh one-key file (no previous line).
        Assert.True(KeyFiles.TryWriteNew(path, out _));
        SynCookieCodec? next = keys.Prepare(path, out changed, out string? error);
        Assert.Null(error);
        Assert.True(changed);
        Assert.NotEqual(before, next!.Key);
        Assert.Equal(before, next.PreviousKey);
        keys.Commit(path, next, changed);
        Assert.Same(next, keys.Codec);

        File.WriteAllText(path, "garbage\n");
        Assert.Null(keys.Prepare(path, out _, out error));
        Assert.Contains(path, error);
    }

    [Fact]
    public void AKeyFileReadableByOthersIsReported()
    {
        string path = Path.Combine(_dir, "key");
        Assert.True(KeyFiles.TryWriteNew(path, out _));
        Assert.Null(KeyFiles.ReadableByOthers(path, out _));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        Assert.Equal("others", KeyFiles.ReadableByOthers(path, out _));

        var log = new StringWriter();
        using (var logs = new ConsoleLogProvider(log, LogFormat.Plain, LogLevel.Information))
        {
            new KeyringService(path, SynCookieCodec.DefaultSlotSeconds, logs.CreateLogger("k")).Open();
        }
        Assert.Contains("readable by others", log.ToString());
    }
}
