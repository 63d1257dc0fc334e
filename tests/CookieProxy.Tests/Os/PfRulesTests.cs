using System.Net;
using CookieProxy.Host.Os;

namespace CookieProxy.Tests.Os;

/// <summary>
/// The pf side of --hide-port and `cookieproxy pf-rules` (macOS, FreeBSD). No pf exists on the Linux build
/// machine: the emitted text is held to the documented pf.conf grammar (<see cref="PfConfGrammar"/>) and pfctl
/// is a fake that answers as a Mac does.
/// </summary>
public sealed class PfRulesTests
{
    private static readonly IPEndPoint[] s_endpoints =
    [
        IPEndPoint.Parse("198.18.0.1:80"),
        IPEndPoint.Parse("[2001:db8::1]:443"),
    ];

    // What `pfctl -s rules` prints on a stock macOS: Apple's anchors, not ours.
    private const string StockMacOsRules = "scrub-anchor \"com.apple/*\" all fragment reassemble\nanchor \"com.apple/*\" all\n";
    private const string RulesWithOurAnchor = StockMacOsRules + "anchor \"cookieproxy\" all\n";
    private const string EnabledInfo = "Status: Enabled for 0 days 00:02:11           Debug: Urgent\n\nState Table                          Total             Rate\n";
    private const string DisabledInfo = "Status: Disabled for 0 days 00:00:00          Debug: Urgent\n";

    [Fact]
    public void TheAnchorRulesDropInboundTcpToEachEndpointQuickly()
    {
        string rules = PfRules.AnchorRules("en0", s_endpoints);

        Assert.Equal(
            "block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 80\n"
            + "block drop in quick on en0 inet6 proto tcp from any to 2001:db8::1 port 443\n",
            rules);
        Assert.Null(PfConfGrammar.Check(rules));
    }

    [Fact]
    public void WithoutAnInterfaceTheRulesApplyOnEveryInterface()
    {
        string rules = PfRules.AnchorRules(null, s_endpoints);

        Assert.StartsWith("block drop in quick inet proto tcp from any to 198.18.0.1 port 80\n", rules);
        Assert.Null(PfConfGrammar.Check(rules));
    }

    [Fact]
    public void ThePfConfLinesHookTheAnchorAndThenLoadItsFile()
    {
        Assert.Equal(
            "anchor \"cookieproxy\"\nload anchor \"cookieproxy\" from \"/etc/pf.anchors/cookieproxy\"\n",
            PfRules.PfConfLines);
        Assert.Null(PfConfGrammar.Check(PfRules.PfConfLines));
    }

    [Theory]
    [InlineData("en0")]
    [InlineData(null)]
    public void ThePfRulesDocumentIsInTheGrammarAsAWhole(string? interfaceName)
    {
        string document = PfRules.Document(interfaceName, s_endpoints);

        Assert.Null(PfConfGrammar.Check(document));
        Assert.Contains(PfRules.PfConfLines, document);
        Assert.Contains(PfRules.AnchorRules(interfaceName, s_endpoints), document);
        // The load must follow its anchor rule (pf.conf(5)).
        Assert.True(document.IndexOf("anchor \"cookieproxy\"\n", StringComparison.Ordinal)
            < document.IndexOf("load anchor", StringComparison.Ordinal));
    }

    [Fact]
    public void ThePfRulesDocumentWithoutEndpointsSaysWhatIsMissing()
    {
        string document = PfRules.Document("en0", []);

        Assert.Null(PfConfGrammar.Check(document));
        Assert.Contains("pass --listen ADDR:PORT", document);
    }

    [Theory]
    [InlineData("en0; pass all")]
    [InlineData("en 0")]
    [InlineData("0en")]
    [InlineData("a-very-long-interface-name")]
    public void AnInterfaceNamePfWouldMisreadIsRefused(string interfaceName)
    {
        Assert.Throws<ArgumentException>(() => PfRules.AnchorRules(interfaceName, s_endpoints));
    }

    // The fixture must be able to fail, or the tests above prove nothing.
    [Theory]
    [InlineData("block drop in on en0 inet proto tcp from any to 198.18.0.1 port 80", "quick")]
    [InlineData("block drop in quick on en0 inet6 proto tcp from any to 198.18.0.1 port 80", "family")]
    [InlineData("block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 0", "port")]
    [InlineData("block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 80 flags S/SA", "unexpected")]
    [InlineData("load anchor \"cookieproxy\" from \"/etc/pf.anchors/cookieproxy\"", "before its anchor rule")]
    [InlineData("anchor cookieproxy", "anchor-rule")]
    [InlineData("pass in all { }", "outside a string")]
    [InlineData("pass in quick proto tcp from any to any port 80", "starts no statement")]
    public void TheGrammarFixtureRejectsWhatPfConfDoesNotAllowHere(string line, string reason)
    {
        string? error = PfConfGrammar.Check("# a comment\n" + line + "\n");

        Assert.NotNull(error);
        Assert.StartsWith("line 2: ", error);
        Assert.Contains(reason, error);
    }

    [Theory]
    [InlineData(StockMacOsRules, false)]
    [InlineData(RulesWithOurAnchor, true)]
    [InlineData("anchor \"cookieproxy/*\" all\n", true)]
    [InlineData("anchor \"cookieproxy-old\" all\n", false)]
    [InlineData("", false)]
    public void TheMainRulesetCheckFindsOnlyOurAnchor(string showRules, bool expected)
    {
        Assert.Equal(expected, PfRules.MainRulesetHasAnchor(showRules));
    }

    [Theory]
    [InlineData(EnabledInfo, true)]
    [InlineData(DisabledInfo, false)]
    [InlineData("pfctl: something else\n", null)]
    public void ThePfStatusIsReadFromShowInfo(string showInfo, bool? expected)
    {
        Assert.Equal(expected, PfRules.IsEnabled(showInfo));
    }

    [Fact]
    public void InstallingLoadsTheRulesIntoTheAnchorAndTheReturnedActionFlushesThem()
    {
        var pfctl = new FakePfctl(EnabledInfo, RulesWithOurAnchor);

        Action flush = PfRules.Install("en0", s_endpoints, pfctl.Run);

        Assert.Equal(["-s info", "-s rules", "-a cookieproxy -f -"], pfctl.Calls);
        Assert.Equal(PfRules.AnchorRules("en0", s_endpoints), pfctl.LastStdin);
        flush();
        Assert.Equal("-a cookieproxy -F rules", pfctl.Calls[^1]);
    }

    [Fact]
    public void AMainRulesetWithoutOurAnchorIsExplainedInOneLineAndNothingIsLoaded()
    {
        var pfctl = new FakePfctl(EnabledInfo, StockMacOsRules);

        var error = Assert.Throws<InvalidOperationException>(() => PfRules.Install("en0", s_endpoints, pfctl.Run));

        Assert.DoesNotContain('\n', error.Message);
        Assert.StartsWith("--hide-port: pf's main ruleset has no `anchor \"cookieproxy\"`", error.Message);
        Assert.Contains("cookieproxy pf-rules", error.Message);
        Assert.DoesNotContain("-a cookieproxy -f -", pfctl.Calls);
    }

    [Fact]
    public void DisabledPfIsExplainedInOneLineAndNothingIsLoaded()
    {
        var pfctl = new FakePfctl(DisabledInfo, RulesWithOurAnchor);

        var error = Assert.Throws<InvalidOperationException>(() => PfRules.Install("en0", s_endpoints, pfctl.Run));

        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains("pf is disabled", error.Message);
        Assert.Contains("pfctl -f /etc/pf.conf -E", error.Message);
        Assert.DoesNotContain("-a cookieproxy -f -", pfctl.Calls);
    }

    [Fact]
    public void AMissingPfctlIsOneLineNamingIt()
    {
        var pfctl = new FakePfctl(EnabledInfo, RulesWithOurAnchor) { Missing = true };

        var error = Assert.Throws<InvalidOperationException>(() => PfRules.Install("en0", s_endpoints, pfctl.Run));

        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains("pfctl -s info", error.Message);
        Assert.Contains("No such file or directory", error.Message);
    }

    [Fact]
    public void RulesPfctlRejectsAreReportedWithItsFirstLine()
    {
        var pfctl = new FakePfctl(EnabledInfo, RulesWithOurAnchor) { LoadError = "stdin:1: syntax error\npfctl: Syntax error in config file: pf rules not loaded\n" };

        var error = Assert.Throws<InvalidOperationException>(() => PfRules.Install("en0", s_endpoints, pfctl.Run));

        Assert.Equal("--hide-port: pfctl rejected the anchor rules: stdin:1: syntax error ...", error.Message);
    }

    /// <summary>pfctl as a Mac answers it; records every call.</summary>
    internal sealed class FakePfctl(string showInfo, string showRules)
    {
        public List<string> Calls { get; } = new();
        public string? LastStdin { get; private set; }
        public bool Missing { get; init; }
        public string? LoadError { get; init; }

        public bool Run(string arguments, string? stdin, out string stdout, out string stderr)
        {
            Calls.Add(arguments);
            LastStdin = stdin ?? LastStdin;
            stdout = "";
            stderr = "";
            if (Missing)
            {
                stderr = "pfctl: An error occurred trying to start process 'pfctl': No such file or directory";
                return false;
            }
            switch (arguments)
            {
                case "-s info":
                    stdout = showInfo;
                    return true;
                case "-s rules":
                    stdout = showRules;
                    return true;
                case "-a cookieproxy -f -" when LoadError is not null:
                    stderr = LoadError;
                    return false;
                default:
                    return true;
            }
        }
    }
}
