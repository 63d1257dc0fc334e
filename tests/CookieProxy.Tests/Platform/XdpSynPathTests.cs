using System.Net;
using System.Runtime.Versioning;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Host.Capture;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Limits;
using CookieProxy.Responder;
using CookieProxy.Tests.Support;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// The host's XDP SYN path decisions (Capture/XdpSynPath): what each --xdp-syn mode does when the program
/// cannot be had, and what the start-up line says. Loading needs root; the interface here does not exist,
/// so every attach fails the way a missing driver or device would.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class XdpSynPathTests
{
    private static readonly IPEndPoint[] s_endpoints = [IPEndPoint.Parse("198.18.0.1:80")];
    private readonly ITestOutputHelper _output;

    public XdpSynPathTests(ITestOutputHelper output) => _output = output;

    /// <summary>Starts a path on <paramref name="device"/>; the log is what the console provider wrote, and
    /// Started is null (SYNs are answered somewhere) or Start's error.</summary>
    private static (string? Error, string Log, XdpSynPath Path) Start(XdpSynMode mode, string device = "cp-nope0")
    {
        var text = new StringWriter();
        XdpSynPath path;
        string? error;
        using (var logs = new ConsoleLogProvider(text, LogFormat.Plain, LogLevel.Debug))
        {
            var codec = new SynCookieCodec(new SipKey(1, 2));
            path = XdpSynPath.Create(mode, device, logs.CreateLogger("CookieProxy.Host.Xdp"), () => codec);
            error = path.Start(new MemoryPacketDevice(), s_endpoints, new ResponderConfig(), new SourceLimitConfig(), 64);
        }
        return (error, text.ToString(), path);
    }

    [Fact]
    public void OffAnswersInUserSpaceAndSaysSo()
    {
        (string? error, string log, XdpSynPath path) = Start(XdpSynMode.Off);
        using (path)
        {
            Assert.Null(error);
            Assert.Contains("SYNs answered in user space (--xdp-syn off)", log);
            Assert.Null(path.LiveFlows);
            Assert.Null(path.ActiveMode);
        }
    }

    [RootFact]
    public void AutoFallsBackToUserSpaceWithTheReasonWhenNoModeCanBeAttached()
    {
        RootOnly.CanRun(_output);
        (string? error, string log, XdpSynPath path) = Start(XdpSynMode.Auto);
        using (path)
        {
            _output.WriteLine(log);
            Assert.Null(error);
            Assert.Contains("SYNs answered in user space (--xdp-syn auto: ", log);
            Assert.Contains("no such interface 'cp-nope0'", log);
            Assert.Null(path.ActiveMode);
            // The capture threads still get a registry: a no-op while nothing is loaded.
            Assert.NotNull(path.LiveFlows);
            path.LiveFlows!.Add(default);
            Assert.Equal(0, path.LiveFlows.Failures);
        }
    }

    [RootTheory]
    [InlineData(XdpSynMode.Native)]
    [InlineData(XdpSynMode.Generic)]
    public void AnExplicitModeThatCannotBeHadIsAnError(XdpSynMode mode)
    {
        RootOnly.CanRun(_output);
        (string? error, string log, XdpSynPath path) = Start(mode);
        using (path)
        {
            _output.WriteLine(log);
            Assert.NotNull(error);
            Assert.StartsWith($"--xdp-syn {mode.ToString().ToLowerInvariant()}: ", error);
            Assert.Contains("no such interface 'cp-nope0'", error);
        }
    }

    [RootFact]
    public void AutoOnLoopbackAnswersInGenericXdpAndDetachesOnDispose()
    {
        RootOnly.CanRun(_output);
        string ns = "xdp-path" + VethPair.LabSuffix;
        VethLab.Shell($"ip netns del {ns} 2>/dev/null; ip netns add {ns} && ip -n {ns} link set lo up");
        try
        {
            (string? error, string log, XdpSynPath path) = Netns.Run(ns, () => Start(XdpSynMode.Auto, "lo"));
            using (path)
            {
                _output.WriteLine(log);
                Assert.Null(error);
                Assert.Contains("SYNs answered in XDP on lo (generic: ", log);
                Assert.Contains("has no native XDP", log);
                Assert.Equal(CookieProxy.Platform.XdpAttachMode.Generic, path.ActiveMode);
                Assert.Contains("xdpgeneric", VethLab.Shell($"ip -n {ns} -d link show lo"));
            }
            Assert.Null(path.ActiveMode);
            Assert.DoesNotContain("xdpgeneric", VethLab.Shell($"ip -n {ns} -d link show lo"));
        }
        finally
        {
            VethLab.Shell($"ip netns del {ns} 2>/dev/null; true");
        }
    }
}
