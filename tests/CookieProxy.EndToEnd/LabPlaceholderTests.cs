namespace CookieProxy.EndToEnd;

public class LabPlaceholderTests
{
    [Fact]
    public void Placeholder() => Assert.True(true);
}
