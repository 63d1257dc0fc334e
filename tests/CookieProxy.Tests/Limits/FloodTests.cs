using CookieProxy.Limits;
using CookieProxy.Wire;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

/// <summary>Spoofed floods against small tables: bounded memory, no allocation, no lost live state.</summary>
[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class FloodTests
{
    private const int Flood = 1_000_000;

    [Fact]
    public void Live_connections_survive_a_million_spoofed_sources_through_TryAcceptSyn()
    {
        var limiter = Create(new SourceLimitConfig
        {
            SynsPerSecond = 100,
            MaxConnectionsPerSource = 3,
            NewConnectionsPerSecond = 50,
            TableSize = 256,
        });
        var live = new List<IpAddr>();
        for (int i = 0; i < 40; i++)
        {
            IpAddr source = Ip($"198.18.1.{i + 1}");
            if (limiter.TryOpenConnection(source, 0) && limiter.TryOpenConnection(source, 0))
            {
                live.Add(source);
            }
        }
        Assert.Equal(40, live.Count);

        for (uint i = 0; i < Flood; i++)
        {
            limiter.TryAcceptSyn(SpoofedV4(i), i / 100);   // 100 new sources per millisecond for 10 s
        }

        Assert.Equal(256, limiter.SynEntries);
        Assert.True(limiter.Evictions > 0);
        Assert.Equal(40, limiter.ConnectionEntries);
        Assert.All(live, source => Assert.Equal(2, limiter.ConnectionsOf(source)));
        Assert.All(live, source => Assert.True(limiter.TryOpenConnection(source, 10_000)));
        Assert.All(live, source => Assert.False(limiter.TryOpenConnection(source, 10_000)));   // cap of 3 still holds
        foreach (IpAddr source in live)
        {
            for (int i = 0; i < 3; i++)
            {
                limiter.CloseConnection(source);
            }
        }
        Assert.Equal(0, limiter.OpenConnections);
        Assert.Equal(0, limiter.UnmatchedCloses);
    }

    [Fact]
    public void Live_connections_survive_a_churn_of_proven_sources_and_the_table_stays_bounded()
    {
        // A botnet completes handshakes from 100k real addresses; the table has 16 ways.
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 8, NewConnectionsPerSecond = 10, TableSize = 16 });
        var live = new List<IpAddr>();
        for (uint i = 0; live.Count < 8; i++)
        {
            IpAddr source = IpAddr.FromV4(0xC6120100u + i);   // 198.18.1.x
            if (limiter.TryOpenConnection(source, 0))
            {
                live.Add(source);
            }
        }

        long accepted = 0;
        for (uint i = 0; i < 100_000; i++)
        {
            IpAddr bot = SpoofedV4(i);
            if (limiter.TryOpenConnection(bot, i))
            {
                accepted++;
                limiter.CloseConnection(bot);
            }
            Assert.True(limiter.ConnectionEntries <= 16);
        }

        Assert.True(accepted > 0);
        Assert.True(limiter.Evictions > 0 || limiter.TableFull > 0);
        Assert.All(live, source => Assert.Equal(1, limiter.ConnectionsOf(source)));
        Assert.Equal(8, limiter.OpenConnections);
    }

    [Fact]
    public void A_source_at_its_limit_stays_limited_while_spoofed_sources_churn_the_table()
    {
        // Eviction takes the fullest bucket, so the one prefix that is actually over its rate is the
        // entry least likely to be forgotten (forgetting it would hand it a fresh burst).
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 10, TableSize = 1024 });
        IpAddr heavy = Ip("198.18.1.99");
        int heavyAccepted = 0;
        uint spoofed = 0;
        for (long ms = 0; ms < 10_000; ms++)
        {
            for (int j = 0; j < 100; j++)
            {
                limiter.TryAcceptSyn(SpoofedV4(spoofed++), ms);
            }
            heavyAccepted += limiter.TryAcceptSyn(heavy, ms) ? 1 : 0;
        }

        Assert.Equal((uint)Flood, spoofed);
        Assert.True(limiter.Evictions > Flood / 2, $"evictions {limiter.Evictions}");
        Assert.InRange(heavyAccepted, 100, 10 + 100);   // burst + 10 s at 10/s
        Assert.Equal(1024, limiter.SynEntries);
    }

    [Fact]
    public void The_tables_never_exceed_their_size()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 5, MaxConnectionsPerSource = 1, TableSize = 64 });

        for (uint i = 0; i < 200_000; i++)
        {
            IpAddr source = SpoofedV4(i);
            limiter.TryAcceptSyn(source, i);
            limiter.TryOpenConnection(source, i);   // never closed: the table fills with live entries
            Assert.True(limiter.SynEntries <= 64);
            Assert.True(limiter.ConnectionEntries <= 64);
        }

        Assert.Equal(64, limiter.ConnectionEntries);
        Assert.Equal(64, limiter.OpenConnections);
        Assert.Equal(200_000 - 64, limiter.TableFull);
        Assert.Equal(128, limiter.LiveEntries);
    }

    [Fact]
    public void No_call_allocates_after_construction()
    {
        var limiter = Create(new SourceLimitConfig
        {
            SynsPerSecond = 1000,
            MaxConnectionsPerSource = 4,
            NewConnectionsPerSecond = 100,
            Ipv4PrefixLength = 24,
            TableSize = 4096,
        });
        IpAddr v6 = Ip("2001:db8:1:2::1");
        RunCalls(limiter, v6, 100_000, 0);   // warm up: JIT and tiering

        long before = GC.GetAllocatedBytesForCurrentThread();
        RunCalls(limiter, v6, 100_000, 100_000);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
    }

    private static void RunCalls(SourceLimiter limiter, IpAddr v6, int count, uint offset)
    {
        for (uint i = offset; i < offset + count; i++)
        {
            IpAddr source = SpoofedV4(i);
            limiter.TryAcceptSyn(source, i);
            limiter.TryAcceptSyn(v6, i);
            if (limiter.TryOpenConnection(source, i))
            {
                limiter.CloseConnection(source);
            }
            limiter.CloseConnection(v6);
        }
    }
}
