using System.Buffers.Binary;
using System.Text;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Diagnostics;

namespace CookieProxy.Tests.Diagnostics;

/// <summary>The pcapng writer of --sample-pcap, read back with a strict block reader (tcpdump and tshark read the
/// files of the lab run, in the end-to-end SamplingTests).</summary>
public sealed class PcapSamplerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cp-pcapng-").FullName;
    private readonly List<string> _log = [];

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>One block as a reader sees it: its type and body (between the length fields).</summary>
    private sealed record Block(uint Type, byte[] Body);

    private sealed record Packet(long UnixMicroseconds, byte[] Data, int OriginalLength, string? Comment);

    private static List<Block> ReadBlocks(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var blocks = new List<Block>();
        int at = 0;
        while (at < bytes.Length)
        {
            Assert.True(bytes.Length - at >= 12, $"a truncated block at {at}");
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at));
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 4));
            Assert.True(length % 4 == 0 && length >= 12 && at + length <= bytes.Length, $"block at {at}: length {length}");
            Assert.Equal((uint)length, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + length - 4)));
            blocks.Add(new Block(type, bytes[(at + 8)..(at + length - 4)]));
            at += length;
        }
        return blocks;
    }

    /// <summary>Options (code, value) from <paramref name="body"/> at <paramref name="at"/> until opt_endofopt.</summary>
    private static List<(ushort Code, byte[] Value)> Options(byte[] body, int at)
    {
        var options = new List<(ushort, byte[])>();
        while (true)
        {
            ushort code = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(at));
            ushort length = BinaryPrimitives.ReadUInt16LittleEndian(body.AsSpan(at + 2));
            if (code == 0)
            {
                Assert.Equal(0, length);
                Assert.Equal(body.Length, at + 4);    // opt_endofopt ends the block
                return options;
            }
            options.Add((code, body[(at + 4)..(at + 4 + length)]));
            at += 4 + ((length + 3) & ~3);
        }
    }

    private static List<Packet> ReadPackets(string path)
    {
        List<Block> blocks = ReadBlocks(path);
        Assert.True(blocks.Count >= 2);
        Assert.Equal(Pcapng.SectionHeaderType, blocks[0].Type);
        Assert.Equal(0x1A2B3C4Du, BinaryPrimitives.ReadUInt32LittleEndian(blocks[0].Body));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(blocks[0].Body.AsSpan(4)));
        Assert.Equal(Pcapng.InterfaceDescriptionType, blocks[1].Type);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(blocks[1].Body));    // LINKTYPE_ETHERNET
        Assert.Contains(Options(blocks[1].Body, 8), o => o.Code == Pcapng.IfName && Encoding.UTF8.GetString(o.Value) == "cp-s0");
        var packets = new List<Packet>();
        foreach (Block b in blocks.Skip(2))
        {
            Assert.Equal(Pcapng.EnhancedPacketType, b.Type);
            Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(b.Body));
            long ts = ((long)BinaryPrimitives.ReadUInt32LittleEndian(b.Body.AsSpan(4)) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(b.Body.AsSpan(8));
            int captured = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.Body.AsSpan(12));
            int original = (int)BinaryPrimitives.ReadUInt32LittleEndian(b.Body.AsSpan(16));
            byte[] data = b.Body[20..(20 + captured)];
            List<(ushort Code, byte[] Value)> options = Options(b.Body, 20 + ((captured + 3) & ~3));
            string? comment = options.Where(o => o.Code == Pcapng.OptComment).Select(o => Encoding.UTF8.GetString(o.Value)).SingleOrDefault();
            packets.Add(new Packet(ts, data, original, comment));
        }
        return packets;
    }

    private static byte[] Frame(int length, byte fill)
    {
        var f = new byte[length];
        Array.Fill(f, fill);
        return f;
    }

    [Fact]
    public void AStartedSamplerLeavesAValidEmptyFileAtOnce()
    {
        using var sampler = new PcapSampler(new PcapSampleOptions(PathOf("s.pcapng"), 1, 1 << 20), "cp-s0", _log.Add);
        sampler.CreateRing(new ProxyCounters());
        sampler.Start();

        Assert.Empty(ReadPackets(PathOf("s.pcapng")));
    }

    [Fact]
    public void EachSampleBecomesAnEnhancedPacketCommentedWithItsReasonAndThread()
    {
        string path = PathOf("s.pcapng");
        var sampler = new PcapSampler(new PcapSampleOptions(path, 1, 1 << 20), "cp-s0", _log.Add);
        DropSampler t0 = sampler.CreateRing(new ProxyCounters());
        DropSampler t1 = sampler.CreateRing(new ProxyCounters());
        sampler.Start();
        long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        t0.OnDrop(Frame(61, 1), DropReason.CookieInvalid);
        t1.OnDrop(Frame(9000, 2), DropReason.Ipv4BadTotalLength);
        sampler.Dispose();

        List<Packet> packets = ReadPackets(path);
        Assert.Equal(2, packets.Count);
        Assert.Equal("drop=CookieInvalid thread=0", packets[0].Comment);
        Assert.Equal(Frame(61, 1), packets[0].Data);
        Assert.Equal(61, packets[0].OriginalLength);
        Assert.Equal("drop=Ipv4BadTotalLength thread=1", packets[1].Comment);
        Assert.Equal(DropSampler.DefaultSnapBytes, packets[1].Data.Length);
        Assert.Equal(9000, packets[1].OriginalLength);
        Assert.InRange(packets[0].UnixMicroseconds, before, before + 60_000_000);
        Assert.Equal(2, sampler.Written);
        Assert.Empty(_log);
    }

    [Fact]
    public void TheFilesRotateAndTogetherNeverHoldMoreThanTheCap()
    {
        string path = PathOf("s.pcapng");
        const long Cap = 1 << 20;
        var counters = new ProxyCounters();
        var sampler = new PcapSampler(new PcapSampleOptions(path, 1, Cap), "cp-s0", _log.Add);
        DropSampler ring = sampler.CreateRing(counters);
        sampler.Start();
        // 3 MiB of 1000-byte frames in bursts the ring holds; the writer drains between them.
        for (int burst = 0; burst < 30; burst++)
        {
            for (int i = 0; i < 100; i++)
            {
                ring.OnDrop(Frame(1000, (byte)burst), DropReason.NoFlow);
            }
            while (ring.Pending > 0)
            {
                Thread.Sleep(5);
            }
        }
        sampler.Dispose();

        string[] files = Directory.GetFiles(_dir).Order().ToArray();
        Assert.Equal([path, path + ".1", path + ".2", path + ".3"], files);
        Assert.True(files.Sum(f => new FileInfo(f).Length) <= Cap, $"{files.Sum(f => new FileInfo(f).Length)} bytes on disk");
        Assert.All(files, f => Assert.True(new FileInfo(f).Length <= Cap / PcapSampler.Files));
        // Every file is a whole section; the newest holds the last burst, the oldest kept ones are gone.
        List<Packet> newest = ReadPackets(path);
        Assert.Equal(29, newest[^1].Data[0]);
        Assert.All(files, f => Assert.NotEmpty(ReadPackets(f)));
        Assert.True(ReadPackets(path + ".3")[0].Data[0] > 0, "the first burst was rotated away");
        Assert.Equal(3000, counters[Counter.PcapSampled]);
        Assert.True(sampler.FilesStarted > PcapSampler.Files);
    }

    [Fact]
    public void AFileThatCannotBeWrittenIsReportedOnceAndSamplesAreDiscardedMeanwhile()
    {
        string path = PathOf("s.pcapng");
        var sampler = new PcapSampler(new PcapSampleOptions(path, 1, 1 << 20), "cp-s0", _log.Add);
        DropSampler ring = sampler.CreateRing(new ProxyCounters());
        sampler.Start();
        Directory.Delete(_dir, recursive: true);    // the directory goes away under the running sampler
        for (int burst = 0; burst < 3; burst++)
        {
            for (int i = 0; i < 200; i++)
            {
                ring.OnDrop(Frame(1500, 1), DropReason.NoFlow);
            }
            Thread.Sleep(250);
        }
        sampler.Dispose();
        Directory.CreateDirectory(_dir);

        Assert.Single(_log);
        Assert.Contains("--sample-pcap", _log[0]);
    }
}
