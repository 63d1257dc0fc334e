using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// --sample-pcap as a host service. Comes before the capture service: Open creates the file (a path we cannot
/// write stops the start with exit 2), the capture service then takes one ring per thread from
/// <see cref="Sampler"/>, Start starts the writer; Stop (after the capture threads stopped) writes what the rings
/// still hold and closes the file.
/// </summary>
internal sealed class PcapSamplerService : IHostService
{
    private readonly ILogger _log;
    private PcapSampler? _sampler;

    public PcapSamplerService(PcapSampleOptions options, string interfaceName, ILogger log)
    {
        _log = log;
        _sampler = new PcapSampler(options, interfaceName, m => MetricsLog.SampleWriteFailed(log, m));
        Sampler = _sampler;
    }

    public string Name => "sampled pcap";

    /// <summary>The sampler the capture service takes its rings from.</summary>
    public PcapSampler Sampler { get; }

    public void Open()
    {
        try
        {
            Sampler.Open();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HostStartException($"--sample-pcap {Sampler.Options.Path}: {e.Message}", ExitCodes.Usage);
        }
    }

    public void Start()
    {
        Sampler.Start();
        PcapSampleOptions o = Sampler.Options;
        MetricsLog.Sampling(_log, o.Every, o.Path, (int)(o.MaxBytes >> 20), PcapSampler.Files);
    }

    public void Stop()
    {
        if (_sampler is not null)
        {
            _sampler.Dispose();
            MetricsLog.SamplingDone(_log, _sampler.Written, _sampler.Options.Path);
            _sampler = null;
        }
    }

    public void Close() => Stop();
}
