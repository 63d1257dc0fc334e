using System.Text;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics.Logging;

/// <summary>How log lines look on stderr.</summary>
public enum LogFormat
{
    /// <summary><c>cookieproxy: message</c> (warnings and errors say so): for a terminal or a log file.</summary>
    Plain,

    /// <summary><c>&lt;6&gt;category[event]: message</c>: the syslog priority prefix journald reads from a
    /// service's stderr (sd-daemon(3)), like Microsoft.Extensions.Hosting.Systemd's console format.</summary>
    Systemd,
}

/// <summary>
/// The log sink: every event is formatted on the calling thread (only when its level is enabled, which the
/// <c>[LoggerMessage]</c> methods check first) and handed to one writer thread through a bounded queue, so no
/// thread that logs, a capture thread least of all, ever waits on the console. When the queue is full the line
/// is dropped and counted; the count is reported with the next line that gets through.
/// <para>Why not Microsoft.Extensions.Logging.Console: it pulls in the options/configuration/DI stack, which with
/// tiered compilation off costs start-up time, and it blocks the caller when its queue is full.</para>
/// </summary>
public sealed class ConsoleLogProvider : ILoggerProvider
{
    private const int QueueCapacity = 4096;

    private readonly TextWriter _output;
    private readonly Channel<string> _queue;
    private readonly Thread _writer;
    private long _dropped;
    private int _disposed;

    public ConsoleLogProvider(TextWriter output, LogFormat format, LogLevel minimumLevel)
    {
        _output = output;
        Format = format;
        MinimumLevel = minimumLevel;
        _queue = Channel.CreateBounded<string>(new BoundedChannelOptions(QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.DropWrite,
            SingleReader = true,
        });
        _writer = new Thread(WriteLoop) { IsBackground = true, Name = "cookieproxy-log" };
        _writer.Start();
    }

    public LogFormat Format { get; }

    public LogLevel MinimumLevel { get; }

    /// <summary>Lines dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The format for this process: journald's when stderr goes to the journal (systemd sets
    /// JOURNAL_STREAM for a service whose stderr is the journal, INVOCATION_ID for every unit it starts).</summary>
    public static LogFormat DetectFormat() =>
        Environment.GetEnvironmentVariable("JOURNAL_STREAM") is { Length: > 0 } || Environment.GetEnvironmentVariable("INVOCATION_ID") is { Length: > 0 }
            ? LogFormat.Systemd
            : LogFormat.Plain;

    public ILogger CreateLogger(string categoryName) => new Logger(this, ShortCategory(categoryName));

    internal void Enqueue(string line)
    {
        if (!_queue.Writer.TryWrite(line))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    private void WriteLoop()
    {
        ChannelReader<string> reader = _queue.Reader;
        long reportedDrops = 0;
        try
        {
            while (reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
            {
                while (reader.TryRead(out string? line))
                {
                    long dropped = Interlocked.Read(ref _dropped);
                    if (dropped != reportedDrops)
                    {
                        _output.WriteLine(FormatLine(LogLevel.Warning, "log", 0, $"{dropped - reportedDrops} log line(s) dropped (the log could not keep up)"));
                        reportedDrops = dropped;
                    }
                    _output.WriteLine(line);
                }
                _output.Flush();
            }
        }
        catch (IOException)
        {
            // stderr went away (a closed pipe): nothing left to tell.
        }
    }

    internal string FormatLine(LogLevel level, string category, int eventId, string message)
    {
        var sb = new StringBuilder(message.Length + 32);
        if (Format == LogFormat.Systemd)
        {
            sb.Append('<').Append(SyslogPriority(level)).Append('>').Append(category);
            if (eventId != 0)
            {
                sb.Append('[').Append(eventId).Append(']');
            }
            sb.Append(": ");
        }
        else
        {
            sb.Append("cookieproxy: ");
            if (level >= LogLevel.Error)
            {
                sb.Append("error: ");
            }
            else if (level == LogLevel.Warning)
            {
                sb.Append("warning: ");
            }
        }
        // One event, one line: journald would split a multi-line message into several entries.
        sb.Append(Format == LogFormat.Systemd ? message.ReplaceLineEndings(" | ") : message);
        return sb.ToString();
    }

    /// <summary>syslog(3) priorities, as sd-daemon(3) prefixes: 3 error, 4 warning, 6 info, 7 debug.</summary>
    private static int SyslogPriority(LogLevel level) => level switch
    {
        LogLevel.Critical => 2,
        LogLevel.Error => 3,
        LogLevel.Warning => 4,
        LogLevel.Information => 6,
        _ => 7,
    };

    /// <summary>"CookieProxy.Host.Capture.CaptureService" → "CaptureService".</summary>
    private static string ShortCategory(string category)
    {
        int dot = category.LastIndexOf('.');
        return dot >= 0 ? category[(dot + 1)..] : category;
    }

    /// <summary>Writes what is queued and stops the writer thread.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _queue.Writer.TryComplete();
            _writer.Join(TimeSpan.FromSeconds(2));
        }
    }

    private sealed class Logger : ILogger
    {
        private readonly ConsoleLogProvider _provider;
        private readonly string _category;

        public Logger(ConsoleLogProvider provider, string category)
        {
            _provider = provider;
            _category = category;
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= _provider.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }
            string message = formatter(state, exception);
            if (exception is not null)
            {
                message = $"{message}{Environment.NewLine}{exception}";
            }
            _provider.Enqueue(_provider.FormatLine(logLevel, _category, eventId.Id, message));
        }
    }
}
