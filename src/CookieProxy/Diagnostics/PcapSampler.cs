using System.Reflection;
using System.Text;
using CookieProxy.Diagnostics;

namespace CookieProxy.Host.Diagnostics;

/// <summary>What --sample-pcap, --sample-every and --sample-max-mb ask for.</summary>
/// <param name="Path">The pcapng file; older ones are <c>Path.1</c> .. <c>Path.3</c>.</param>
/// <param name="Every">Keep 1 in this many dropped frames (plus the first frames of every drop reason).</param>
/// <param name="MaxBytes">The most the files together hold on disk.</param>
public sealed record PcapSampleOptions(string Path, int Every, long MaxBytes)
{
    public const int DefaultEvery = 1000;
    public const int DefaultMaxMegabytes = 64;
}

/// <summary>
/// The writer half of the sampled pcap of attack traffic: one thread drains every capture thread's
/// <see cref="DropSampler"/> ring ten times a second into a pcapng file, each packet commented with its drop
/// reason and capture thread. The files are capped together at <see cref="PcapSampleOptions.MaxBytes"/>:
/// <see cref="Files"/> files of a quarter each, rotated like logrotate (FILE becomes FILE.1, FILE.1 FILE.2, ...,
/// the oldest goes). Each file is a complete pcapng section, so <c>tcpdump -r</c> and <c>tshark -r</c> read
/// any of them, also while it is being written (blocks are flushed whole).
/// </summary>
public sealed class PcapSampler : IDisposable
{
    public const int Files = 4;

    private const int DrainIntervalMs = 100;

    private readonly PcapSampleOptions _options;
    private readonly string _interface;
    private readonly Action<string> _log;
    private readonly long _fileCap;
    private readonly List<DropSampler> _rings = [];
    private readonly List<byte[][]> _comments = [];
    private readonly byte[] _frame = new byte[DropSampler.DefaultSnapBytes];
    private readonly byte[] _block = new byte[64 * 1024];
    private readonly byte[] _header = new byte[1024];    // apart from _block: a rotation happens between a packet's encoding and its write
    private readonly ManualResetEventSlim _stop = new();
    private Thread? _thread;
    private FileStream? _file;
    private long _fileBytes;
    private long _failedUntilMs;

    /// <param name="interfaceName">Named in the file's interface block.</param>
    /// <param name="log">Where a failing write is reported (once per failure; sampling then pauses for a while).</param>
    public PcapSampler(PcapSampleOptions options, string interfaceName, Action<string> log)
    {
        _options = options;
        _interface = interfaceName;
        _log = log;
        _fileCap = Math.Max(options.MaxBytes / Files, 64 * 1024);
    }

    public PcapSampleOptions Options => _options;

    /// <summary>Packets written so far (writer thread; read a moment stale elsewhere).</summary>
    public long Written { get; private set; }

    /// <summary>Files started so far, the first included.</summary>
    public int FilesStarted { get; private set; }

    /// <summary>A new ring for one capture thread, counting into its counters. Call before <see cref="Start"/>.</summary>
    public DropSampler CreateRing(ProxyCounters counters)
    {
        if (_thread is not null)
        {
            throw new InvalidOperationException("Rings are created before the writer starts.");
        }
        var ring = new DropSampler(counters, _options.Every);
        _rings.Add(ring);
        var comments = new byte[(int)DropReason.Count][];
        int thread = _rings.Count - 1;
        for (int r = 0; r < comments.Length; r++)
        {
            comments[r] = Encoding.UTF8.GetBytes($"drop={CounterTable.NameOf((DropReason)r)} thread={thread}");
        }
        _comments.Add(comments);
        return ring;
    }

    /// <summary>Creates the file (so that it exists and reads, empty, at once) and starts the writer thread.</summary>
    /// <exception cref="IOException">The file cannot be created.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be created.</exception>
    public void Start()
    {
        if (_file is null)
        {
            Open();
        }
        _thread = new Thread(Run) { IsBackground = true, Name = "cookieproxy-pcap" };
        _thread.Start();
    }

    /// <summary>Creates the file without starting the writer (rings may still be created).</summary>
    /// <exception cref="IOException">The file cannot be created.</exception>
    /// <exception cref="UnauthorizedAccessException">The file cannot be created.</exception>
    public void Open() => OpenNewFile();

    private void Run()
    {
        try
        {
            while (!_stop.Wait(DrainIntervalMs))
            {
                DrainAll();
            }
        }
        catch (Exception e)
        {
            // A bug of ours: sampling stops (the rings fill and count pcap_sample_lost), the proxy goes on.
            _log($"--sample-pcap {_options.Path}: bug: {e}; sampling stopped");
        }
    }

    /// <summary>Writes every waiting sample; returns how many (writer thread, or the caller once stopped).</summary>
    public int DrainAll()
    {
        int written = 0;
        for (int t = 0; t < _rings.Count; t++)
        {
            DropSampler ring = _rings[t];
            int n;
            while ((n = ring.TryRead(_frame, out DropSample sample)) >= 0)
            {
                if (Write(_frame.AsSpan(0, n), sample, _comments[t][(int)sample.Reason]))
                {
                    written++;
                }
            }
        }
        if (written > 0)
        {
            Flush();
        }
        return written;
    }

    private bool Write(ReadOnlySpan<byte> frame, in DropSample sample, byte[] comment)
    {
        if (_file is null && !TryReopen())
        {
            return false;    // paused after a failure: the sample is discarded
        }
        int length = Pcapng.WriteEnhancedPacket(_block, sample.UnixMicroseconds, frame, sample.OriginalLength, comment);
        try
        {
            if (_fileBytes + length > _fileCap)
            {
                Rotate();
            }
            _file!.Write(_block, 0, length);
            _fileBytes += length;
            Written++;
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fail(e);
            return false;
        }
    }

    private void Flush()
    {
        try
        {
            _file?.Flush();
        }
        catch (IOException e)
        {
            Fail(e);
        }
    }

    private void Fail(Exception e)
    {
        _log($"--sample-pcap {_options.Path}: {e.Message}; sampling pauses for 10 s");
        CloseFile();
        _failedUntilMs = Environment.TickCount64 + 10_000;
    }

    private bool TryReopen()
    {
        if (Environment.TickCount64 < _failedUntilMs)
        {
            return false;
        }
        try
        {
            Rotate();
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Fail(e);
            return false;
        }
    }

    /// <summary>FILE.(n-2) → FILE.(n-1), ..., FILE → FILE.1, and a new FILE.</summary>
    private void Rotate()
    {
        CloseFile();
        string path = _options.Path;
        File.Delete($"{path}.{Files - 1}");
        for (int i = Files - 2; i >= 1; i--)
        {
            if (File.Exists($"{path}.{i}"))
            {
                File.Move($"{path}.{i}", $"{path}.{i + 1}");
            }
        }
        if (File.Exists(path))
        {
            File.Move(path, path + ".1");
        }
        OpenNewFile();
    }

    private void OpenNewFile()
    {
        var fileOptions = new FileStreamOptions
        {
            Mode = FileMode.Create,
            Access = FileAccess.Write,
            Share = FileShare.Read,
            BufferSize = 64 * 1024,
        };
        if (!OperatingSystem.IsWindows())
        {
            // Attack traffic, but traffic: readable by the owner and the group (adm, say), not by everyone.
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead;
        }
        var file = new FileStream(_options.Path, fileOptions);
        string version = typeof(PcapSampler).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";
        int n = Pcapng.WriteSectionHeader(_header, $"cookieproxy {version}".TrimEnd());
        n += Pcapng.WriteInterfaceDescription(_header.AsSpan(n), _interface, DropSampler.DefaultSnapBytes);
        file.Write(_header, 0, n);
        file.Flush();
        _file = file;
        _fileBytes = n;
        FilesStarted++;
    }

    private void CloseFile()
    {
        FileStream? file = _file;
        _file = null;
        try
        {
            file?.Dispose();
        }
        catch (IOException)
        {
            // Its last buffered blocks are lost with the disk that refused them; the failure is reported already.
        }
    }

    /// <summary>Stops the writer, writes what the rings still hold (the capture threads have stopped) and closes the file.</summary>
    public void Dispose()
    {
        _stop.Set();
        _thread?.Join();
        if (FilesStarted > 0)
        {
            DrainAll();    // never opened (start-up failed before): nothing to write, and no file to create now
        }
        CloseFile();
        _stop.Dispose();
    }
}
