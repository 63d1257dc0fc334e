using CookieProxy.Cookies;
using CookieProxy.Crypto;

namespace CookieProxy.Host.Cookies;

/// <summary>Reading, writing and rotating --key-file (its format is <see cref="CookieKey"/>'s).</summary>
public static class KeyFiles
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Reads and parses the key file; null, or why it cannot be used.</summary>
    public static string? CheckReadable(string path) => TryRead(path, out _, out _, out string? error) ? null : error;

    public static bool TryRead(string path, out SipKey current, out SipKey? previous, out string? error)
    {
        current = default;
        previous = null;
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            error = e.Message;
            return false;
        }
        if (!CookieKey.TryParse(text, out current, out previous, out string parseError))
        {
            error = $"{parseError} (create one with `cookieproxy genkey FILE`)";
            return false;
        }
        error = null;
        return true;
    }

    /// <summary>Who besides the owner may read the file ("group", "others", "group and others"), or null.</summary>
    public static string? ReadableByOthers(string path, out UnixFileMode mode)
    {
        mode = 0;
        if (OperatingSystem.IsWindows())
        {
            return null;
        }
        try
        {
            mode = File.GetUnixFileMode(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        bool group = (mode & UnixFileMode.GroupRead) != 0;
        bool others = (mode & UnixFileMode.OtherRead) != 0;
        return group && others ? "group and others" : group ? "group" : others ? "others" : null;
    }

    /// <summary>`genkey FILE`: a fresh key, mode 0600, written atomically.</summary>
    public static bool TryWriteNew(string path, out string? error) =>
        TryWriteAtomically(path, CookieKey.NewKeyFileText(), OwnerOnly, out error);

    /// <summary>`genkey --rotate FILE`: the current key becomes the previous one and a new current key is written,
    /// through a temporary file renamed over the old one (readers see the old file or the new one, never half),
    /// with the old file's permissions.</summary>
    public static bool TryRotate(string path, out string? error)
    {
        if (!TryRead(path, out SipKey current, out _, out string? readError))
        {
            error = readError;
            return false;
        }
        UnixFileMode mode = OwnerOnly;
        if (!OperatingSystem.IsWindows())
        {
            try
            {
                mode = File.GetUnixFileMode(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                error = $"cannot read its mode: {e.Message}";
                return false;
            }
        }
        string text = CookieKey.FormatKeyFile(CookieKey.Generate(), current);
        return TryWriteAtomically(path, text, mode, out error);
    }

    private static bool TryWriteAtomically(string path, string text, UnixFileMode mode, out string? error)
    {
        string full = Path.GetFullPath(path);
        string tmp = Path.Combine(Path.GetDirectoryName(full) ?? ".", $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                // Created with the final mode: the key is never readable by others, not even for a moment.
                options.UnixCreateMode = mode & ~(UnixFileMode.SetUser | UnixFileMode.SetGroup | UnixFileMode.StickyBit);
            }
            using (var stream = new FileStream(tmp, options))
            using (var writer = new StreamWriter(stream))
            {
                writer.Write(text);
                writer.Flush();
                stream.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(tmp, options.UnixCreateMode!.Value);
            }
            File.Move(tmp, full, overwrite: true);
            error = null;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(tmp);
            }
            catch (Exception e2) when (e2 is IOException or UnauthorizedAccessException)
            {
                // nothing more to do
            }
            error = $"cannot write: {e.Message}";
            return false;
        }
    }
}
