using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using CookieProxy.Io;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// Root-only tests FAIL when not root. The one exception: COOKIEPROXY_SKIP_ROOT_TESTS=1 without root marks them
/// skipped through <see cref="RootFactAttribute"/> / <see cref="RootTheoryAttribute"/>, so xunit reports them
/// as skipped and they are never counted as passed.
/// </summary>
internal static class RootOnly
{
    public static bool SkipRequested =>
        !Environment.IsPrivilegedProcess && Environment.GetEnvironmentVariable("COOKIEPROXY_SKIP_ROOT_TESTS") == "1";

    public const string SkipReason = "not root and COOKIEPROXY_SKIP_ROOT_TESTS=1: needs root (network namespaces, AF_PACKET)";

    /// <summary>Fails the test unless the process is root; returns true so call sites read as a guard.</summary>
    public static bool CanRun(ITestOutputHelper output)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            Assert.Fail("This test needs root (network namespaces, AF_PACKET). Run as root, or set COOKIEPROXY_SKIP_ROOT_TESTS=1 to skip it knowingly.");
        }
        return true;
    }
}

/// <summary>A fact that needs root; skipped (visibly) only when COOKIEPROXY_SKIP_ROOT_TESTS=1 and not root.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute()
    {
        if (RootOnly.SkipRequested)
        {
            Skip = RootOnly.SkipReason;
        }
    }
}

/// <summary>A theory that needs root; skipped (visibly) only when COOKIEPROXY_SKIP_ROOT_TESTS=1 and not root.</summary>
public sealed class RootTheoryAttribute : TheoryAttribute
{
    public RootTheoryAttribute()
    {
        if (RootOnly.SkipRequested)
        {
            Skip = RootOnly.SkipReason;
        }
    }
}

/// <summary>
/// Two namespaces joined by a veth pair (MACs 02:00:c6:12:c8:01 / :02, /24 addresses), brought up once per
/// fixture and deleted on dispose (which also removes anything attached to the veth). Side A has every
/// offload off, so raw frames arrive as sent; side B too unless it keeps TX checksum offload.
/// </summary>
public abstract class VethPair : IDisposable
{
    /// <summary>CP_LAB_ID suffixes the namespace names (as scripts/lib/common.sh does), so labs of several
    /// checkouts can run side by side.</summary>
    public static readonly string LabSuffix = Environment.GetEnvironmentVariable("CP_LAB_ID") is { Length: > 0 } id ? "-" + id : "";

    private readonly string _nsA;
    private readonly string _ifA;
    private readonly IPAddress _addrA;
    private readonly string _nsB;
    private readonly string _ifB;
    private readonly IPAddress _addrB;
    private readonly bool _peerKeepsTxChecksumOffload;
    private readonly Lock _lock = new();
    private bool _up;

    protected VethPair(string nsA, string ifA, IPAddress addrA, string nsB, string ifB, IPAddress addrB, bool peerKeepsTxChecksumOffload)
    {
        _nsA = nsA;
        _ifA = ifA;
        _addrA = addrA;
        _nsB = nsB;
        _ifB = ifB;
        _addrB = addrB;
        _peerKeepsTxChecksumOffload = peerKeepsTxChecksumOffload;
    }

    public void EnsureUp()
    {
        lock (_lock)
        {
            if (_up)
            {
                return;
            }
            VethLab.Shell($"ip netns del {_nsA} 2>/dev/null; ip netns del {_nsB} 2>/dev/null; true");
            _up = true; // from here on Dispose cleans up, even if a step below fails
            string peerOffloads = _peerKeepsTxChecksumOffload ? "rx off gro off gso off tso off" : "tx off rx off gro off gso off tso off";
            VethLab.Shell($"""
                set -e
                ip netns add {_nsA}
                ip netns add {_nsB}
                ip link add {_ifA} address 02:00:c6:12:c8:01 netns {_nsA} type veth peer name {_ifB} address 02:00:c6:12:c8:02 netns {_nsB}
                ip netns exec {_nsA} sysctl -qw net.ipv6.conf.all.disable_ipv6=1
                ip netns exec {_nsB} sysctl -qw net.ipv6.conf.all.disable_ipv6=1
                ip -n {_nsA} addr add {_addrA}/24 dev {_ifA}
                ip -n {_nsB} addr add {_addrB}/24 dev {_ifB}
                ip -n {_nsA} link set lo up
                ip -n {_nsB} link set lo up
                ip -n {_nsA} link set {_ifA} up
                ip -n {_nsB} link set {_ifB} up
                ip netns exec {_nsA} ethtool -K {_ifA} tx off rx off gro off gso off tso off >/dev/null
                ip netns exec {_nsB} ethtool -K {_ifB} {peerOffloads} >/dev/null
                for i in $(seq 50); do ip -n {_nsA} link show {_ifA} | grep -q LOWER_UP && break; sleep 0.1; done
                """);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_up)
            {
                VethLab.Shell($"ip netns del {_nsA} 2>/dev/null; ip netns del {_nsB} 2>/dev/null; true");
                _up = false;
            }
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Receives until <paramref name="count"/> frames (with their flags) arrived or the time is up.</summary>
    public static List<(byte[] Frame, FrameFlags Flags)> ReceiveAtLeast(IPacketDevice device, int count, int timeoutMs = 5000)
    {
        var received = new List<(byte[], FrameFlags)>();
        var batch = new FrameBatch(64);
        var clock = Stopwatch.StartNew();
        while (received.Count < count && clock.ElapsedMilliseconds < timeoutMs)
        {
            int n = device.Receive(batch, 100);
            for (int i = 0; i < n; i++)
            {
                received.Add((batch[i].ToArray(), batch.GetFlags(i)));
            }
        }
        return received;
    }
}

/// <summary>
/// Two namespaces joined by a veth pair, in the style of the kernel's nft_synproxy.sh selftest:
/// <code>
///   netns plat-a: plat0 02:00:c6:12:c8:01 198.18.200.1/24  &lt;--veth--&gt;  netns plat-b: plat1 02:00:c6:12:c8:02 198.18.200.2/24
/// </code>
/// plat0 has every offload off (so raw frames arrive as sent); plat1 keeps TX checksum offload so frames from
/// its kernel arrive CHECKSUM_PARTIAL (TP_STATUS_CSUMNOTREADY). Nothing is routed anywhere else.
/// </summary>
public sealed class VethLab : VethPair
{
    public static readonly string NsA = "plat-a" + VethPair.LabSuffix;
    public static readonly string NsB = "plat-b" + VethPair.LabSuffix;
    public const string IfA = "plat0";
    public const string IfB = "plat1";
    public static readonly byte[] MacA = [0x02, 0x00, 0xc6, 0x12, 0xc8, 0x01];
    public static readonly byte[] MacB = [0x02, 0x00, 0xc6, 0x12, 0xc8, 0x02];
    public static readonly IPAddress AddrA = IPAddress.Parse("198.18.200.1");
    public static readonly IPAddress AddrB = IPAddress.Parse("198.18.200.2");

    public VethLab()
        : base(NsA, IfA, AddrA, NsB, IfB, AddrB, peerKeepsTxChecksumOffload: true)
    {
    }
    public static string Shell(string script)
    {
        var start = new ProcessStartInfo("/bin/sh")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using Process process = Process.Start(start)!;
        process.StandardInput.Write(script);
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        string stderr = process.StandardError.ReadToEnd();
        if (!process.WaitForExit(30_000))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"Shell script timed out:\n{script}");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"Shell script failed ({process.ExitCode}): {stderr}\n{script}");
        }
        return stdout.Result;
    }
}

/// <summary>Runs code on a fresh thread that has joined a network namespace; sockets opened there stay in it.</summary>
internal static partial class Netns
{
    private const int CLONE_NEWNET = 0x40000000;

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int setns(int fd, int nstype);

    public static T Run<T>(string name, Func<T> action)
    {
        T? result = default;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                using Microsoft.Win32.SafeHandles.SafeFileHandle ns = File.OpenHandle($"/run/netns/{name}");
                if (setns((int)ns.DangerousGetHandle(), CLONE_NEWNET) != 0)
                {
                    throw new InvalidOperationException($"setns({name}) failed: errno {Marshal.GetLastPInvokeError()}");
                }
                // The thread ends after this: the process's other threads never see the namespace.
                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        return result!;
    }
}

/// <summary>Ethernet/IPv4/TCP frames with correct checksums, optionally 802.1Q-tagged.</summary>
internal static class TestFrames
{
    public static byte[] Tcp(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort,
        int sequenceIndex, int payloadLength = 16, ushort? vlanTci = null)
    {
        int l2 = vlanTci is null ? 14 : 18;
        var frame = new byte[l2 + 20 + 20 + payloadLength];
        Span<byte> f = frame;
        VethLab.MacA.CopyTo(f);
        VethLab.MacB.CopyTo(f[6..]);
        if (vlanTci is ushort tci)
        {
            BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x8100);
            BinaryPrimitives.WriteUInt16BigEndian(f[14..], tci);
        }
        BinaryPrimitives.WriteUInt16BigEndian(f[(l2 - 2)..], 0x0800);

        Span<byte> ip = f[l2..];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(40 + payloadLength));
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)sequenceIndex);
        ip[8] = 64;
        ip[9] = 6;
        source.GetAddressBytes().CopyTo(ip[12..]);
        destination.GetAddressBytes().CopyTo(ip[16..]);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], CookieProxy.Wire.Checksum.Compute(ip[..20]));

        Span<byte> tcp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], (uint)sequenceIndex * 1000);
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 65535);
        BinaryPrimitives.WriteInt32BigEndian(tcp[20..], sequenceIndex);
        for (int i = 24; i < 20 + payloadLength; i++)
        {
            tcp[i] = (byte)(sequenceIndex + i);
        }
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], CookieProxy.Wire.Checksum.Tcp(
            CookieProxy.Wire.IpAddr.FromIPAddress(source), CookieProxy.Wire.IpAddr.FromIPAddress(destination), tcp[..(20 + payloadLength)]));
        return frame;
    }

    /// <summary>Ethernet/IPv6/TCP (an ACK with 16 bytes of payload), for the IPv6 side of fanout steering.</summary>
    public static byte[] Tcp6(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, int sequenceIndex)
    {
        const int PayloadLength = 16;
        var frame = new byte[14 + 40 + 20 + PayloadLength];
        Span<byte> f = frame;
        VethLab.MacA.CopyTo(f);
        VethLab.MacB.CopyTo(f[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(f[12..], 0x86DD);

        Span<byte> ip = f[14..];
        ip[0] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], 20 + PayloadLength);
        ip[6] = 6;
        ip[7] = 64;
        source.GetAddressBytes().CopyTo(ip[8..]);
        destination.GetAddressBytes().CopyTo(ip[24..]);

        Span<byte> tcp = ip[40..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], (uint)sequenceIndex * 1000);
        tcp[12] = 5 << 4;
        tcp[13] = 0x10; // ACK
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 65535);
        BinaryPrimitives.WriteInt32BigEndian(tcp[20..], sequenceIndex);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], CookieProxy.Wire.Checksum.Tcp(
            CookieProxy.Wire.IpAddr.FromIPAddress(source), CookieProxy.Wire.IpAddr.FromIPAddress(destination), tcp[..(20 + PayloadLength)]));
        return frame;
    }

    public static int SequenceIndexOf(ReadOnlySpan<byte> frame)
    {
        int l2 = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]) == 0x8100 ? 18 : 14;
        int l3 = BinaryPrimitives.ReadUInt16BigEndian(frame[(l2 - 2)..]) == 0x86DD ? 40 : 20;
        return BinaryPrimitives.ReadInt32BigEndian(frame[(l2 + l3 + 20)..]);
    }
}

/// <summary>
/// Runs code on a fresh thread that has dropped every capability (capset(2) acts on the calling thread only),
/// to see the EPERM paths as an unprivileged user would, without leaving the test process.
/// </summary>
internal static unsafe partial class Unprivileged
{
    private const uint _LINUX_CAPABILITY_VERSION_3 = 0x20080522;

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int capset(uint* header, uint* data);

    public static T Run<T>(Func<T> action)
    {
        T? result = default;
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                uint* header = stackalloc uint[2] { _LINUX_CAPABILITY_VERSION_3, 0 };
                uint* data = stackalloc uint[6]; // two { effective, permitted, inheritable } words, all zero
                new Span<uint>(data, 6).Clear();
                if (capset(header, data) != 0)
                {
                    throw new InvalidOperationException($"capset failed: errno {Marshal.GetLastPInvokeError()}");
                }
                result = action();
            }
            catch (Exception e)
            {
                failure = e;
            }
        });
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
        return result!;
    }
}
