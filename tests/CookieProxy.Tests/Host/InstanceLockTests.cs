using System.Net;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;

namespace CookieProxy.Tests.Host;

public sealed class InstanceLockTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"cp-locks-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static readonly IPEndPoint A = IPEndPoint.Parse("198.18.0.1:80");
    private static readonly IPEndPoint B = IPEndPoint.Parse("[fd00::1]:443");

    [Fact]
    public void ASecondInstanceOnTheSameInterfaceAndEndpointIsRefusedWithTheHolder()
    {
        var first = new InstanceLock(_dir, "cp-s0", [A, B]);
        first.Open();
        try
        {
            var second = new InstanceLock(_dir, "cp-s0", [A]);
            HostStartException e = Assert.Throws<HostStartException>(second.Open);
            Assert.Contains("198.18.0.1:80 on cp-s0 is already protected by pid", e.Message);
            second.Close();

            // Another endpoint, or the same endpoint on another interface, is someone else's business.
            var other = new InstanceLock(_dir, "cp-s0", [IPEndPoint.Parse("198.18.0.1:81")]);
            other.Open();
            other.Close();
            var otherInterface = new InstanceLock(_dir, "cp-s1", [A]);
            otherInterface.Open();
            otherInterface.Close();
        }
        finally
        {
            first.Close();
        }
        // Released on close: the next instance gets it (as it would after a crash: the kernel drops a dead
        // process's flock, and the file left behind does not matter).
        var next = new InstanceLock(_dir, "cp-s0", [A]);
        next.Open();
        next.Close();
    }

    [Fact]
    public void AReloadTakesTheLocksOfNewEndpointsAndGivesBackRemovedOnes()
    {
        var locks = new InstanceLock(_dir, "cp-s0", [A]);
        locks.Open();
        var blocker = new InstanceLock(_dir, "cp-s0", [IPEndPoint.Parse("198.18.0.1:82")]);
        blocker.Open();
        try
        {
            Assert.Null(locks.Update([B]));
            var takesA = new InstanceLock(_dir, "cp-s0", [A]);
            takesA.Open();
            takesA.Close();
            Assert.Throws<HostStartException>(new InstanceLock(_dir, "cp-s0", [B]).Open);

            string? refused = locks.Update([B, IPEndPoint.Parse("198.18.0.1:82")]);
            Assert.Contains("already protected", refused);
            Assert.Equal([B], locks.Endpoints);
        }
        finally
        {
            blocker.Close();
            locks.Close();
        }
    }

    [Fact]
    public void TheLockNameHoldsTheNetworkNamespaceInterfaceAndEndpoint()
    {
        string path = InstanceLock.LockPath("/run/cookieproxy", "cp-s0", B);
        Assert.StartsWith("/run/cookieproxy/net", path);
        Assert.EndsWith("-cp-s0-fd00__1-443.lock", path);
    }

    [Fact]
    public void AnUncreatableRunDirectoryIsAUsageError()
    {
        File.WriteAllText(_dir, "a file, not a directory");
        try
        {
            var locks = new InstanceLock(Path.Combine(_dir, "sub"), "cp-s0", [A]);
            HostStartException e = Assert.Throws<HostStartException>(locks.Open);
            Assert.Equal(ExitCodes.Usage, e.ExitCode);
            Assert.Contains("--run-dir", e.Message);
        }
        finally
        {
            File.Delete(_dir);
        }
    }
}
