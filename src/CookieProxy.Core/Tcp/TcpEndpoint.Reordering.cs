using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// Reordering tolerance, the way Linux does it (tcp_input.c):
// - RFC 2883 D-SACK: a first SACK block below the cumulative ACK, or inside the second block, reports a
//   duplicate delivery; it is never new SACKed data (tcp_check_dsack).
// - RFC 3708 (D-SACK) and RFC 3522 (Eifel, timestamps) detect that a retransmission was unnecessary; the
//   congestion response is then undone, RFC 4015 / Linux tcp_undo_cwnd_reduction (restore cwnd, ssthresh).
// - The reordering degree measured in segments raises DupThresh (Linux tcp_check_sack_reordering /
//   tp->reordering): NewReno's duplicate ACK threshold and RACK's packet threshold (.Rack.cs). Any
//   reordering seen also lets RACK keep a non-zero reordering window (RFC 8985 6.2 step 3).
public sealed partial class TcpEndpoint
{
    /// <summary>RFC 5681 3.2 / RFC 6675 2: DupThresh, also the floor of the adaptive threshold.</summary>
    private const int MinDupThresh = 3;

    /// <summary>Ceiling of the adaptive DupThresh (Linux net.ipv4.tcp_max_reordering is 300).</summary>
    public const int MaxReordering = 127;

    /// <summary>DupThresh in segments: 3, raised to the reordering degree measured on this connection.</summary>
    private int _dupThresh;

    /// <summary>End (exclusive) of the highest byte ever retransmitted: bytes below it may be copies, above never.</summary>
    private SeqNumber _rxtHigh;

    /// <summary>Highest sequence number the client ever SACKed (or SND.UNA when higher): Linux's "fack".</summary>
    private SeqNumber _highestSacked;

    // Undo state of the last congestion episode (Linux undo_marker / undo_retrans / retrans_stamp / prior_*).
    private bool _undoValid;
    private SeqNumber _undoMarker;
    /// <summary>Retransmissions of the episode not yet proven unnecessary.</summary>
    private int _undoRetrans;
    /// <summary>TSval of the episode's first retransmission (RFC 3522 2: the Eifel reference).</summary>
    private uint _undoTsVal;
    private int _priorCwnd;
    private int _priorSsthresh;
    private Congestion.Cubic _priorCubic;

    /// <summary>Current DupThresh in segments (3 until reordering is observed, at most <see cref="MaxReordering"/>).</summary>
    public int ReorderingThreshold => _dupThresh;

    /// <summary>ACKs whose first SACK block was a D-SACK (RFC 2883).</summary>
    public long DsacksReceived { get; private set; }

    /// <summary>Congestion responses undone because every retransmission of the episode proved spurious.</summary>
    public long SpuriousRecoveriesUndone { get; private set; }

    /// <summary>Times the measured reordering raised DupThresh.</summary>
    public long ReorderingEvents { get; private set; }

    /// <summary>
    /// Retransmitted segments proven unnecessary: D-SACKed copies of data we retransmitted (RFC 3708 2, loss
    /// probes included) and first retransmissions the timestamps showed spurious (RFC 3522 Eifel).
    /// </summary>
    public long SpuriousRetransmissions { get; private set; }

    /// <summary>Linux tcp_init_undo: remember what cwnd and ssthresh were before the reduction.</summary>
    private void StartUndoEpisode()
    {
        _undoValid = true;
        _undoMarker = _sndUna;
        _undoRetrans = 0;
        _priorCwnd = _cwnd;
        _priorSsthresh = _ssthresh;
        _priorCubic = _cubic;
    }

    /// <summary>A retransmission ending at <paramref name="end"/> went out (a loss probe does not count for undo: RFC 8985 7.4 judges it).</summary>
    private void OnRetransmitted(SeqNumber end, long nowMs, bool countForUndo)
    {
        _rxtHigh = SeqNumber.Max(_rxtHigh, end);
        if (_undoValid && countForUndo)
        {
            if (_undoRetrans == 0)
            {
                _undoTsVal = CurrentTsVal(nowMs);
            }

            _undoRetrans++;
        }
    }

    /// <summary>
    /// RFC 2883 4 (Linux tcp_check_dsack): the first block is a D-SACK when it lies below the cumulative ACK,
    /// or inside the second block. It reports a duplicate: never new SACKed data.
    /// </summary>
    private static bool IsDsack(in TcpRepr seg)
    {
        if (seg.Options.SackCount == 0)
        {
            return false;
        }

        SackBlock b0 = seg.Options.Sack[0];
        if (b0.Right <= b0.Left)
        {
            return false;
        }

        if (b0.Left < seg.Ack)
        {
            return true;
        }

        if (seg.Options.SackCount > 1)
        {
            SackBlock b1 = seg.Options.Sack[1];
            return b0.Left >= b1.Left && b0.Right <= b1.Right;
        }

        return false;
    }

    /// <summary>
    /// RFC 3708 2 / Linux tcp_sacktag_write_queue: a D-SACK for data the episode retransmitted means one of
    /// its retransmissions was unnecessary; once all were, undo (RFC 3708 3, RFC 4015).
    /// </summary>
    private void OnDsack(SackBlock b, SeqNumber priorHighestSacked)
    {
        if (b.Right > _sndNxt || b.Left < _sndUna - Math.Max(_maxSndWnd, 1))
        {
            return; // bogus or ancient: ignore (hostile input never counts)
        }

        DsacksReceived++;
        if (b.Left >= _rxtHigh)
        {
            return; // never retransmitted: the network duplicated the original
        }

        // RFC 3708 2: the original and our retransmission both arrived, one of them needlessly.
        int segments = Math.Max((b.Right - b.Left + _effMss - 1) / _effMss, 1);
        SpuriousRetransmissions += segments;
        if (_tlpOutstanding && _tlpIsRetrans && b.Right >= _tlpEndSeq)
        {
            return; // the loss probe's copy: RFC 8985 7.4 decides about it, not undo
        }

        // The hole was reordering, not loss.
        NoteReordering(b.Left, priorHighestSacked);
        if (_undoValid && _undoRetrans > 0 && b.Left >= _undoMarker && b.Right <= _sndNxt)
        {
            _undoRetrans = Math.Max(_undoRetrans - segments, 0);
            if (_undoRetrans == 0)
            {
                UndoCongestionResponse();
            }
        }
    }

    /// <summary>
    /// RFC 3522 3.2 (Eifel detection): the ACK that first acknowledges the episode's first retransmission
    /// echoes a TSecr older than that retransmission's TSval, so the original was acknowledged.
    /// Called for an ACK advancing SND.UNA from <paramref name="prevUna"/>.
    /// </summary>
    private void CheckEifel(in TcpRepr seg, SeqNumber prevUna, SeqNumber priorHighestSacked)
    {
        if (!_tsEnabled || !_undoValid || _undoRetrans == 0 || !seg.Options.HasTimestamp || seg.Options.TsEcr == 0
            || prevUna > _undoMarker || seg.Ack <= _undoMarker)
        {
            return;
        }

        if (unchecked((int)(seg.Options.TsEcr - _undoTsVal)) < 0)
        {
            SpuriousRetransmissions++; // the episode's first retransmission: the original was acknowledged
            NoteReordering(_undoMarker, priorHighestSacked);
            if (_undoRetrans == 1)
            {
                // Only that one retransmission went out: it was spurious. With more outstanding we wait for
                // their D-SACKs, like Linux tcp_try_undo_partial ("if (tp->retrans_out) return").
                UndoCongestionResponse();
            }
        }
    }

    /// <summary>
    /// Linux tcp_undo_cwnd_reduction (RFC 4015 3.2 for timeouts, RFC 9438 4.9 for CUBIC's state): cwnd,
    /// ssthresh and CUBIC's W_max/K go back to their values before the episode and recovery ends; no segment
    /// is considered lost any more, so after an RTO sending resumes with new data (RFC 4015 3.2 step 4).
    /// </summary>
    private void UndoCongestionResponse()
    {
        _undoValid = false;
        SpuriousRecoveriesUndone++;
        _cwnd = Math.Max(_cwnd, _priorCwnd);
        _ssthresh = Math.Max(_ssthresh, _priorSsthresh);
        _cubic = _priorCubic;
        _bytesAckedInCa = 0;
        if (_inRecovery || _inLoss)
        {
            _inRecovery = false;
            _inLoss = false;
            _forceRetransmit = false;
            RackOnRecoveryExit();
        }

        // The reduction was revoked, so a real loss in this window may start a new episode (RFC 6582's
        // "recover" only guards against reducing twice).
        _recover = _sndUna - 1;
        _dupAcks = 0;
        _rtx.ClearLost();
        _lostLow = _sndNxt;
    }

    /// <summary>
    /// Linux tcp_check_sack_reordering: data at <paramref name="low"/> arrived after data up to
    /// <paramref name="high"/> (the highest SACKed before this ACK, Linux's prior_fack); that distance in
    /// segments is the reordering degree. DupThresh only grows.
    /// </summary>
    private void NoteReordering(SeqNumber low, SeqNumber high)
    {
        if (low >= high)
        {
            return;
        }

        _reorderingSeen = true;
        int distance = high - low;
        int segments = (distance + _effMss - 1) / _effMss;
        segments = Math.Min(segments, MaxReordering);
        if (segments > _dupThresh)
        {
            _dupThresh = segments;
            ReorderingEvents++;
        }
    }
}
