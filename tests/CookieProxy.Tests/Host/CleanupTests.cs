using CookieProxy.Host.Os;

namespace CookieProxy.Tests.Host;

public class CleanupTests
{
    [Theory]
    [InlineData("cookieproxy_1234", 1234)]
    [InlineData("cookieproxy_lab", null)]
    [InlineData("cookieproxy_lab_reorder", null)]
    [InlineData("cookieproxy_", null)]
    [InlineData("cookieproxy_-5", null)]
    [InlineData("other_1234", null)]
    public void OnlyTablesNamedAfterAProcessAreOurs(string name, int? pid) => Assert.Equal(pid, LeftoverCleaner.PidOf(name));

    [Fact]
    public void ALiveProcessIsNotALeftover()
    {
        Assert.True(LeftoverCleaner.ProcessAlive(Environment.ProcessId));
        Assert.False(LeftoverCleaner.ProcessAlive(int.MaxValue - 1));
    }

    [Fact]
    public void XdpProgramsAreReadFromIpLinkJson()
    {
        const string Json = """
            [{"ifindex":1,"ifname":"lo","flags":["LOOPBACK"]},
             {"ifindex":2,"ifname":"cp-s0","xdp":{"mode":2,"prog":{"id":42,"name":"cp_xdp_syn","tag":"aa","jited":1}}},
             {"ifindex":3,"ifname":"eth1","xdp":{"mode":4,"attached":[{"mode":1,"prog":{"id":7,"name":"cp_xdp_redirect"}},{"mode":2,"prog":{"id":8,"name":"other"}}]}}]
            """;
        var programs = LeftoverCleaner.ParseXdpPrograms(Json);
        Assert.Contains(("cp-s0", "cp_xdp_syn", 2), programs);
        Assert.Contains(("eth1", "cp_xdp_redirect", 1), programs);
        Assert.Contains(("eth1", "other", 2), programs);
    }
}
