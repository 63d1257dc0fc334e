using System.Text.Json;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Diagnostics;

namespace CookieProxy.Tests.Host;

public class StatsReporterTests
{
    private static ProxyCounters Thread(long syn, long valid, long flows, long dropped, int noFlowDrops)
    {
        var c = new ProxyCounters();
        c[Counter.FramesReceived] = syn + valid + noFlowDrops;
        c[Counter.SynReceived] = syn;
        c[Counter.SynAckSent] = syn;
        c[Counter.CookieValid] = valid;
        c[Counter.FlowsCreated] = valid;
        c[Counter.FlowsActive] = flows;
        c[Counter.CaptureDropped] = dropped;
        c[Counter.RingBuffersCreated] = 2 * flows + 4;
        c[Counter.RingBuffersInUse] = 2 * flows;
        c[Counter.RingBuffersPooled] = 4;
        for (int i = 0; i < noFlowDrops; i++)
        {
            c.Drop(DropReason.NoFlow);
        }
        return c;
    }

    [Fact]
    public void TheJsonSumsTheThreadsAndListsEachOne()
    {
        ProxyCounters[] perThread = [Thread(1000, 3, 2, 5, 7), Thread(250, 1, 1, 0, 2)];
        string path = Path.Combine(Path.GetTempPath(), $"cp-stats-{Guid.NewGuid():N}.json");
        try
        {
            StatsReporter.WriteJson(path, StatsReporter.Sum(perThread), perThread, 12.5);
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement root = doc.RootElement;
            Assert.Equal(1250, root.GetProperty("syn_received").GetInt64());
            Assert.Equal(1250, root.GetProperty("synack_sent").GetInt64());
            Assert.Equal(4, root.GetProperty("cookie_valid").GetInt64());
            Assert.Equal(3, root.GetProperty("flows_active").GetInt64());
            Assert.Equal(5, root.GetProperty("capture_dropped").GetInt64());
            Assert.Equal(14, root.GetProperty("ring_buffers_created").GetInt64());
            Assert.Equal(6, root.GetProperty("ring_buffers_in_use").GetInt64());
            Assert.Equal(8, root.GetProperty("ring_buffers_pooled").GetInt64());
            Assert.Equal(9, root.GetProperty("drops_total").GetInt64());
            Assert.Equal(9, root.GetProperty("drops").GetProperty("NoFlow").GetInt64());
            Assert.Equal(2, root.GetProperty("threads").GetInt32());
            JsonElement[] threads = root.GetProperty("per_thread").EnumerateArray().ToArray();
            Assert.Equal(2, threads.Length);
            Assert.Equal(1000, threads[0].GetProperty("syn_received").GetInt64());
            Assert.Equal(250, threads[1].GetProperty("syn_received").GetInt64());
            Assert.Equal(7, threads[0].GetProperty("drops_total").GetInt64());
            Assert.Equal(1, threads[1].GetProperty("flows_active").GetInt64());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void EveryCounterHasOneUniqueSnakeCaseNameAndHelp()
    {
        var names = new HashSet<string>();
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            CounterInfo info = CounterTable.Of(c);
            Assert.Matches("^[a-z][a-z0-9_]*$", info.Name);
            Assert.False(string.IsNullOrWhiteSpace(info.Help), $"{c} has no help text");
            Assert.True(names.Add(info.Name), $"{info.Name} is used twice");
        }
    }

    [Fact]
    public void TheJsonHasEveryCounterOfTheTable()
    {
        string path = Path.Combine(Path.GetTempPath(), $"cp-stats-{Guid.NewGuid():N}.json");
        try
        {
            var c = new ProxyCounters();
            c[Counter.XdpInternalErrors] = 3;
            StatsReporter.WriteJson(path, c, [c], 1);
            using JsonDocument doc = JsonDocument.Parse(File.ReadAllText(path));
            for (var k = (Counter)0; k < Counter.Count; k++)
            {
                Assert.Equal(c.Read(k), doc.RootElement.GetProperty(CounterTable.NameOf(k)).GetInt64());
            }
            for (var r = (DropReason)1; r < DropReason.Count; r++)
            {
                Assert.Equal(0, doc.RootElement.GetProperty("drops").GetProperty(r.ToString()).GetInt64());
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void TheLineShowsTheSum()
    {
        ProxyCounters[] perThread = [Thread(1000, 3, 2, 0, 7), Thread(250, 1, 1, 0, 2)];
        string line = StatsReporter.FormatLine(StatsReporter.Sum(perThread), null, 1, final: false);
        Assert.StartsWith("cookieproxy: syn=1250 synack=1250 ack_valid=4 ack_invalid=0 flows=3 created=4 ", line);
        Assert.EndsWith("drops=9 [NoFlow=9]", line);
    }
}
