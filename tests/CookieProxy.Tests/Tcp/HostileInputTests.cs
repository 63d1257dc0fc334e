using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>Hostile input never throws: seeded random segments against endpoints in every state.</summary>
public class HostileInputTests : TcpTestBase
{
    [Theory]
    [InlineData(1, false, false)]
    [InlineData(2, true, true)]
    [InlineData(3, true, false)]
    public void Random_segments_never_throw_and_keep_the_buffers_within_bounds(int seed, bool sack, bool ts)
    {
        var rng = new Random(seed);
        var config = new TcpConfig { ReceiveBufferSize = 8192, SendBufferSize = 8192, MaxOutOfOrderSegments = 4 };
        byte[] payload = new byte[3000];
        for (int round = 0; round < 40; round++)
        {
            InEstablished(config, Handshake(sack: sack, ts: ts, sendScale: (sbyte)rng.Next(-1, 15), recvScale: 3));
            for (int i = 0; i < 500 && !Ep.IsClosed; i++)
            {
                Now += rng.Next(0, 300);
                TcpRepr r = default;
                // Mostly near the real sequence spaces, sometimes anywhere.
                r.Seq = rng.Next(4) == 0 ? new SeqNumber((uint)rng.NextInt64()) : Ep.ReceiveNext + rng.Next(-20_000, 20_000);
                r.Ack = rng.Next(4) == 0 ? new SeqNumber((uint)rng.NextInt64()) : Ep.SendUnacknowledged + rng.Next(-5_000, 20_000);
                r.Flags = (TcpFlags)rng.Next(256);
                if (rng.Next(3) > 0)
                {
                    r.Flags = (r.Flags | TcpFlags.Ack) & ~(TcpFlags.Rst | TcpFlags.Syn);
                }

                r.Window = (ushort)rng.Next(65536);
                r.Options = TcpOptionsRepr.None;
                r.Options.HasTimestamp = rng.Next(2) == 0;
                r.Options.TsVal = (uint)rng.NextInt64();
                r.Options.TsEcr = (uint)rng.NextInt64();
                r.Options.SackCount = (byte)rng.Next(0, 6);
                for (int b = 0; b < 4; b++)
                {
                    SeqNumber left = Ep.SendUnacknowledged + rng.Next(-3000, 30_000);
                    r.Options.Sack[b] = new SackBlock(left, left + rng.Next(-100, 5000));
                }

                Ep.Process(in r, payload.AsSpan(0, rng.Next(0, payload.Length)), Now);
                if (rng.Next(3) == 0)
                {
                    Ep.Send(payload.AsSpan(0, rng.Next(0, 2000)));
                }

                if (rng.Next(3) == 0)
                {
                    Ep.ConsumeReceived(rng.Next(0, Ep.ReceiveAvailable + 1));
                }

                if (rng.Next(50) == 0)
                {
                    Ep.CloseSend();
                }

                DispatchAll();
                Assert.InRange(Ep.ReceiveAvailable, 0, config.ReceiveBufferSize);
                Assert.InRange(Ep.SendBufferUsed, 0, config.SendBufferSize);
                Assert.True(Ep.NextDeadlineMs >= 0);
            }
        }
    }
}
