namespace CookieProxy.Tests.Support;

/// <summary>
/// Tests that measure this thread's allocations or depend on thread-pool timing run alone: in xunit's
/// parallel run a test thread can execute other tests' work (task inlining during waits), which showed up as
/// hundreds of MB "allocated" by a zero-allocation loop, and a busy pool delays backend loops.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "Serial (allocation and timing sensitive)";
}
