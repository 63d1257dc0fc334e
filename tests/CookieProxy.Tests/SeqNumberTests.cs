using CookieProxy.Tcp;

namespace CookieProxy.Tests;

public class SeqNumberTests
{
    [Fact]
    public void ComparisonsAreWrapSafe()
    {
        var a = new SeqNumber(0xFFFF_FFF0);
        SeqNumber b = a + 0x20;
        Assert.Equal(0x10u, b.Value);
        Assert.True(a < b);
        Assert.True(b > a);
        Assert.Equal(0x20, b - a);
        Assert.True(new SeqNumber(5).InWindow(a, 0x20));
        Assert.False(new SeqNumber(0x10).InWindow(a, 0x20));
    }
}
