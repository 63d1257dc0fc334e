using CookieProxy.Limits;
using CookieProxy.Wire;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

/// <summary>pf-style max-src-conn and max-src-conn-rate for handshake-proven sources.</summary>
public class ConnectionLimitTests
{
    private static readonly IpAddr s_client = Ip("198.18.1.10");

    [Fact]
    public void The_concurrent_cap_refuses_until_a_connection_closes()
    {
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 2 });

        Assert.True(limiter.TryOpenConnection(s_client, 0));
        Assert.True(limiter.TryOpenConnection(s_client, 0));
        Assert.False(limiter.TryOpenConnection(s_client, 0));
        Assert.Equal(1, limiter.ConnectionsRefusedConcurrent);
        Assert.Equal(2, limiter.ConnectionsOf(s_client));

        limiter.CloseConnection(s_client);
        Assert.True(limiter.TryOpenConnection(s_client, 0));
        Assert.False(limiter.TryOpenConnection(s_client, 0));
        Assert.Equal(2, limiter.ConnectionsRefusedConcurrent);
        Assert.Equal(2, limiter.OpenConnections);
    }

    [Fact]
    public void The_new_connection_rate_refuses_after_the_burst_even_when_connections_close()
    {
        var limiter = Create(new SourceLimitConfig { NewConnectionsPerSecond = 1, Burst = 3 });

        for (int i = 0; i < 3; i++)
        {
            Assert.True(limiter.TryOpenConnection(s_client, 0));
            limiter.CloseConnection(s_client);
        }
        Assert.False(limiter.TryOpenConnection(s_client, 999));
        Assert.True(limiter.TryOpenConnection(s_client, 1000));

        Assert.Equal(1, limiter.ConnectionsRefusedRate);
        Assert.Equal(0, limiter.ConnectionsRefusedConcurrent);
    }

    [Fact]
    public void A_refusal_by_the_cap_does_not_spend_a_rate_token()
    {
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 1, NewConnectionsPerSecond = 1, Burst = 2 });

        Assert.True(limiter.TryOpenConnection(s_client, 0));
        for (int i = 0; i < 10; i++)
        {
            Assert.False(limiter.TryOpenConnection(s_client, 0));
        }
        limiter.CloseConnection(s_client);

        Assert.True(limiter.TryOpenConnection(s_client, 0));   // the second burst token is still there
        Assert.Equal(10, limiter.ConnectionsRefusedConcurrent);
        Assert.Equal(0, limiter.ConnectionsRefusedRate);
    }

    [Fact]
    public void A_close_without_an_open_is_counted_not_thrown()
    {
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 4 });

        limiter.CloseConnection(s_client);
        Assert.True(limiter.TryOpenConnection(s_client, 0));
        limiter.CloseConnection(s_client);
        limiter.CloseConnection(s_client);

        Assert.Equal(2, limiter.UnmatchedCloses);
        Assert.Equal(0, limiter.OpenConnections);
        Assert.Equal(0, limiter.ConnectionsOf(s_client));
    }

    [Fact]
    public void Without_a_rate_an_entry_is_freed_when_its_last_connection_closes()
    {
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 4 });

        Assert.True(limiter.TryOpenConnection(s_client, 0));
        Assert.True(limiter.TryOpenConnection(s_client, 0));
        limiter.CloseConnection(s_client);
        Assert.Equal(1, limiter.ConnectionEntries);
        limiter.CloseConnection(s_client);

        Assert.Equal(0, limiter.ConnectionEntries);
    }

    [Fact]
    public void A_table_bucket_full_of_live_connections_refuses_instead_of_evicting()
    {
        // TableSize 4 is a single 4-way bucket: every source competes for the same four ways.
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 10, TableSize = 4 });
        IpAddr[] live = [Ip("198.18.1.1"), Ip("198.18.1.2"), Ip("198.18.1.3"), Ip("198.18.1.4")];
        foreach (IpAddr source in live)
        {
            Assert.True(limiter.TryOpenConnection(source, 0));
        }

        Assert.False(limiter.TryOpenConnection(Ip("198.18.1.5"), 0));
        Assert.Equal(1, limiter.TableFull);
        Assert.Equal(0, limiter.Evictions);
        Assert.All(live, source => Assert.Equal(1, limiter.ConnectionsOf(source)));

        // A known source still opens more, within its cap; a freed way admits the newcomer.
        Assert.True(limiter.TryOpenConnection(live[0], 0));
        limiter.CloseConnection(live[3]);
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.5"), 0));
    }

    [Fact]
    public void Idle_rate_state_is_evicted_and_counted_when_a_new_source_needs_the_way()
    {
        var limiter = Create(new SourceLimitConfig { NewConnectionsPerSecond = 1, Burst = 1, TableSize = 4 });
        for (int i = 1; i <= 4; i++)
        {
            IpAddr source = Ip($"198.18.1.{i}");
            Assert.True(limiter.TryOpenConnection(source, 0));
            limiter.CloseConnection(source);
        }

        // All four buckets are still empty (refill at 1 s): taking a way loses state.
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.5"), 500));
        Assert.Equal(1, limiter.Evictions);

        // After the refill a way holds nothing worth keeping: reused without an eviction.
        limiter.CloseConnection(Ip("198.18.1.5"));
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.6"), 5000));
        Assert.Equal(1, limiter.Evictions);
        Assert.Equal(4, limiter.ConnectionEntries);
    }
}
