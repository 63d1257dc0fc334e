using CookieProxy.Responder;

namespace CookieProxy.Tests.Responder;

/// <summary>
/// The gate in front of the XDP SYN responder, by state: calm (SYNs passed up to the syncaches) and flood (the
/// program answers them). Two threads with a leave rate of 25 SYN/s each: 50 SYNs per 1 s window are quiet.
/// </summary>
public class SynCacheXdpGateTests
{
    private const long T0 = 10_000;

    private static SynCacheXdpGate NewGate() => new(new SynCacheConfig
    {
        Capacity = 400,
        EnterCookiesPerSecond = 100,
        LeaveCookiesPerSecond = 25,
        WindowMs = 1000,
        QuietWindowsToLeave = 3,
    }, threads: 2, T0);

    private static SynCacheXdpGate InFlood(out long now, out long syns)
    {
        SynCacheXdpGate gate = NewGate();
        Assert.True(gate.Update(T0 + 100, anyThreadFlooded: true, synsTotal: 500));
        now = T0 + 100;
        syns = 500;
        return gate;
    }

    [Fact]
    public void ANewGateIsCalmAndPassesSynsUp()
    {
        SynCacheXdpGate gate = NewGate();
        Assert.True(gate.PassSyns);
        Assert.Equal(0, gate.Changes);
    }

    [Fact]
    public void CalmItStaysCalmWhileNoThreadIsFloodedWhateverTheCount()
    {
        SynCacheXdpGate gate = NewGate();
        for (int i = 1; i <= 50; i++)
        {
            Assert.False(gate.Update(T0 + (i * 100), anyThreadFlooded: false, synsTotal: i * 10));
        }
        Assert.True(gate.PassSyns);
    }

    [Fact]
    public void CalmTheFirstPollThatSeesAFloodedThreadHandsTheSynsToTheProgram()
    {
        SynCacheXdpGate gate = NewGate();
        Assert.True(gate.Update(T0 + 100, anyThreadFlooded: true, synsTotal: 200));
        Assert.False(gate.PassSyns);
        Assert.Equal(1, gate.Changes);
    }

    [Fact]
    public void InFloodTheThreadsGoingQuietIsNotEnoughWhileTheKernelStillAnswersAFlood()
    {
        SynCacheXdpGate gate = InFlood(out long now, out long syns);
        for (int second = 1; second <= 10; second++)
        {
            syns += 100_000; // the program answers them; the threads see nothing and report calm
            Assert.False(gate.Update(now + (second * 1000), anyThreadFlooded: false, synsTotal: syns));
        }
        Assert.False(gate.PassSyns);
    }

    [Fact]
    public void InFloodThreeQuietWindowsInARowPassSynsUpAgain()
    {
        SynCacheXdpGate gate = InFlood(out long now, out long syns);
        Assert.False(gate.Update(now + 1000, false, syns += 50));
        Assert.False(gate.Update(now + 2000, false, syns += 50));
        Assert.True(gate.Update(now + 3000, false, syns += 50));
        Assert.True(gate.PassSyns);
        Assert.Equal(2, gate.Changes);
    }

    [Fact]
    public void InFloodABusyWindowBetweenQuietOnesStartsTheCountAgain()
    {
        SynCacheXdpGate gate = InFlood(out long now, out long syns);
        gate.Update(now + 1000, false, syns += 10);
        gate.Update(now + 2000, false, syns += 10);
        gate.Update(now + 3000, false, syns += 51);
        gate.Update(now + 4000, false, syns += 10);
        Assert.False(gate.Update(now + 5000, false, syns += 10));
        Assert.True(gate.Update(now + 6000, false, syns += 10));
    }

    [Fact]
    public void InFloodPollsWithinOneWindowDecideNothing()
    {
        SynCacheXdpGate gate = InFlood(out long now, out long syns);
        for (int i = 1; i < 10; i++)
        {
            Assert.False(gate.Update(now + (i * 100), false, syns));
        }
        Assert.False(gate.PassSyns);
    }

    [Fact]
    public void InFloodALatePollAfterLongSilenceCountsEveryWindowItMissed()
    {
        SynCacheXdpGate gate = InFlood(out long now, out long syns);
        Assert.True(gate.Update(now + 3500, false, syns + 30));
        Assert.True(gate.PassSyns);
    }

    [Fact]
    public void AGateForNoThreadsIsRefused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new SynCacheXdpGate(SynCacheConfig.For(64), 0, 0));
}
