using CookieProxy.Host.Cli;
using CookieProxy.Host.Os;

namespace CookieProxy.Tests.Os;

/// <summary>`cookieproxy pf-rules`: the run options in, the pf.conf lines and the anchor rules out.</summary>
public sealed class PfRulesCommandTests
{
    private static (int Exit, string Output, string Error) Invoke(string line)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = CommandTree.Invoke(CommandTree.Build(new CommandHandlers()), line.Split(' ', StringSplitOptions.RemoveEmptyEntries), output, error);
        return (exit, output.ToString(), error.ToString());
    }

    [Fact]
    public void PfRulesPrintsThePfConfLinesAndTheRulesForTheListenersGiven()
    {
        (int exit, string output, string error) = Invoke(
            "pf-rules --interface en0 --listen 198.18.0.1:80 --backend 127.0.0.1:8080 --listen [2001:db8::1]:443 --backend [::1]:8443");

        Assert.Equal("", error);
        Assert.Equal(0, exit);
        Assert.Contains("anchor \"cookieproxy\"\nload anchor \"cookieproxy\" from \"/etc/pf.anchors/cookieproxy\"\n", output);
        Assert.Contains("block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 80\n", output);
        Assert.Contains("block drop in quick on en0 inet6 proto tcp from any to 2001:db8::1 port 443\n", output);
        Assert.Null(PfConfGrammar.Check(output));
    }

    [Fact]
    public void PfRulesReadsTheListenersFromTheConfigFile()
    {
        string file = Path.Combine(Path.GetTempPath(), $"cookieproxy-pfrules-{Environment.ProcessId}-{Guid.NewGuid():N}.yaml");
        File.WriteAllText(file, "interface: en1\nlisteners:\n  - listen: 198.18.0.9:8443\n    backend: 127.0.0.1:8443\n");
        try
        {
            (int exit, string output, string error) = Invoke($"pf-rules --config {file}");

            Assert.True(exit == 0, error);
            Assert.Contains("block drop in quick on en1 inet proto tcp from any to 198.18.0.9 port 8443\n", output);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void PfRulesWithoutListenersIsAUsageError()
    {
        (int exit, string output, string error) = Invoke("pf-rules --interface en0");

        Assert.Equal(2, exit);
        Assert.Equal("", output);
        Assert.Contains("--listen", error);
    }

    [Fact]
    public void PfRulesRefusesAnInterfaceNamePfWouldMisread()
    {
        (int exit, _, string error) = Invoke("pf-rules --interface 0bad --listen 198.18.0.1:80 --backend 127.0.0.1:8080");

        Assert.Equal(2, exit);
        Assert.StartsWith("cookieproxy: --interface 0bad: ", error);
        Assert.Single(error.TrimEnd('\n').Split('\n'));
    }

    [Fact]
    public void PfRulesHasHelp()
    {
        (int exit, string output, _) = Invoke("pf-rules --help");

        Assert.Equal(0, exit);
        Assert.Contains("pf.conf", output);
        Assert.Contains(PfRules.AnchorName, output);
    }
}
