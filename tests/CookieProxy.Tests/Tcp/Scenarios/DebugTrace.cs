using Xunit.Abstractions;

namespace CookieProxy.Tests.Tcp.Scenarios;

public class DebugTrace(ITestOutputHelper output)
{
    [Fact]
    public void Trace()
    {
        var lines = new List<string>();
        var faults = new FaultConfig { DropRate = 0.05 };
        ScenarioResult r = ScenarioHarness.Run(faults, 2, 200_000, false, false, trace: lines.Add);
        output.WriteLine(r.ToString());
        foreach (string l in lines.Take(400))
        {
            output.WriteLine(l);
        }
    }
}
