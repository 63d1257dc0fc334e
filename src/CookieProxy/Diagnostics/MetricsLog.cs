using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics;

/// <summary>The log events of /metrics (80xx) and the sampled pcap (81xx); stable ids, see HostLog.</summary>
internal static partial class MetricsLog
{
    [LoggerMessage(8001, LogLevel.Information, "metrics at http://{Endpoint}/metrics")]
    public static partial void Serving(ILogger logger, string endpoint);

    [LoggerMessage(8101, LogLevel.Information, "sampling 1 in {Every} dropped frames (and the first of every drop reason) to {Path}, at most {MaxMegabytes} MiB in {Files} files")]
    public static partial void Sampling(ILogger logger, int every, string path, int maxMegabytes, int files);

    [LoggerMessage(8102, LogLevel.Warning, "{Message}")]
    public static partial void SampleWriteFailed(ILogger logger, string message);

    [LoggerMessage(8103, LogLevel.Information, "sampled pcap: {Written} frame(s) written to {Path}")]
    public static partial void SamplingDone(ILogger logger, long written, string path);
}
