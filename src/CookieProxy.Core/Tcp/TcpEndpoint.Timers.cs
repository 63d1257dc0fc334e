namespace CookieProxy.Tcp;

// Timers as data (smoltcp style): one main timer (retransmit / loss probe / persist / TIME-WAIT, as Linux
// multiplexes icsk_retransmit_timer) plus deadlines for RACK's reordering timer, the delayed ACK, idle,
// first-data and keep-alive. RFC 6298 (RTO), RFC 8985 6.3 and 7.2 (reordering timer, PTO), RFC 9293
// 3.8.6.1 (persist), 3.8.6.3 (delayed ACK), 3.8.3 R2 (give up), 3.8.4 (keep-alive), 3.10.7.4 TIME-WAIT.
public sealed partial class TcpEndpoint
{
    /// <summary>Keep-alive interval after the first probe (Linux tcp_keepalive_intvl).</summary>
    private const long KeepAliveIntervalMs = 75_000;

    private TcpTimer _timer;
    /// <summary>The RTO deadline while data is outstanding (RFC 6298 5), also the latest a loss probe may fire.</summary>
    private long _rtoAtMs = long.MaxValue;
    private int _retransmits;
    private int _persistBackoff;
    private bool _probePending;
    private long _keepAliveSentMs;

    /// <summary>RTO expirations.</summary>
    public long RetransmitTimeouts { get; private set; }

    /// <summary>Zero-window probes sent.</summary>
    public long WindowProbes { get; private set; }

    /// <summary>
    /// Earliest time Dispatch has work to do: 0 (overdue) when something can be sent right now, the earliest
    /// timer otherwise, long.MaxValue when none.
    /// </summary>
    public long NextDeadlineMs
    {
        get
        {
            if (_rstPending)
            {
                return 0;
            }

            if (_state == TcpState.Closed)
            {
                return long.MaxValue;
            }

            if (_ackNow || _probePending || _tlpPending || HasSendableData() || PersistTimerDue)
            {
                return 0;
            }

            long deadline = _timer.IsRunning ? _timer.ExpiresAtMs : long.MaxValue;
            deadline = Math.Min(deadline, _rackTimerAtMs);
            if (_ackDelayed)
            {
                deadline = Math.Min(deadline, _delayedAckAtMs);
            }

            if (_state != TcpState.TimeWait)
            {
                if (_config.IdleTimeoutMs > 0)
                {
                    deadline = Math.Min(deadline, _lastRecvMs + _config.IdleTimeoutMs);
                }

                if (FirstDataPending)
                {
                    deadline = Math.Min(deadline, _createdMs + _config.FirstDataTimeoutMs);
                }

                if (KeepAliveArmed)
                {
                    deadline = Math.Min(deadline, KeepAliveDeadline);
                }
            }

            return deadline;
        }
    }

    /// <summary>Send() hit a zero window: a Dispatch must arm the persist timer (Send itself has no clock).</summary>
    private bool PersistTimerDue => _sndWnd == 0 && _timer.Kind != TcpTimerKind.Persist && _sndNxt == _sndUna
        && _sendRing.Count > 0 && _state is not TcpState.TimeWait;

    private bool HasSendableData()
    {
        if (_state is TcpState.TimeWait)
        {
            return false;
        }

        return CanRetransmitNow() || TryPlanNewSegment(ignoreCwnd: false, out _);
    }

    /// <summary>A lost record waits and the windows let it go (what <see cref="SendLost"/> would send first).</summary>
    private bool CanRetransmitNow()
    {
        if (_rtx.LostPendingCount == 0 || _sndWnd == 0)
        {
            return false;
        }

        int count = _rtx.Count;
        for (int i = _rtx.IndexAfter(_lostLow); i < count; i++)
        {
            ref TxRecord r = ref _rtx[i];
            if (RetransmitQueue.NeedsRetransmission(in r))
            {
                return (r.End <= _sndUna + _sndWnd || r.Start == _sndUna)
                    && (_forceRetransmit || _cwnd - Pipe >= Math.Min(r.Length, _effMss));
            }
        }

        return false;
    }

    private bool FirstDataPending => _config.FirstDataTimeoutMs > 0 && _rcvNxt == _irs + 1
        && _state is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2;

    private bool KeepAliveArmed => _config.KeepAlive && _state is TcpState.Established or TcpState.CloseWait
        && _sndNxt == _sndUna && _sendRing.Count == 0;

    /// <summary>Idle time after the client's last segment; once a probe went unanswered, the probe interval.</summary>
    private long KeepAliveDeadline => _keepAliveSentMs > _lastRecvMs
        ? _keepAliveSentMs + KeepAliveIntervalMs
        : _lastRecvMs + _config.KeepAliveIdleMs;

    private void RunTimers(long nowMs)
    {
        if (_state != TcpState.TimeWait)
        {
            if (_config.IdleTimeoutMs > 0 && nowMs - _lastRecvMs >= _config.IdleTimeoutMs)
            {
                Terminate(TcpCloseReason.IdleTimeout, sendRst: true); // nothing from the client for too long
                return;
            }

            if (FirstDataPending && nowMs - _createdMs >= _config.FirstDataTimeoutMs)
            {
                Terminate(TcpCloseReason.FirstDataTimeout, sendRst: true); // connected but silent (slowloris-style)
                return;
            }
        }

        if (nowMs >= _rackTimerAtMs)
        {
            OnRackTimeout(nowMs); // RFC 8985 6.3: the earliest of the loss timers
        }

        if (_timer.IsRunning && nowMs >= _timer.ExpiresAtMs)
        {
            switch (_timer.Kind)
            {
                case TcpTimerKind.Retransmit:
                    OnRetransmitTimeout(nowMs);
                    break;
                case TcpTimerKind.LossProbe:
                    OnLossProbeTimeout();
                    break;
                case TcpTimerKind.Persist:
                    OnPersistTimeout(nowMs);
                    break;
                case TcpTimerKind.TimeWait:
                    // RFC 9293 3.10.8: "If the time-wait timeout expires ... delete the TCB, enter CLOSED".
                    _timer.Stop();
                    Terminate(TcpCloseReason.Graceful, sendRst: false);
                    return;
            }
        }

        if (_state == TcpState.Closed)
        {
            return;
        }

        if (KeepAliveArmed && nowMs >= KeepAliveDeadline)
        {
            // RFC 9293 3.8.4 / RFC 1122 4.2.3.6: probe with SEG.SEQ = SND.NXT - 1 (= SND.UNA - 1 when idle).
            _probePending = true;
            _keepAliveSentMs = nowMs;
        }
    }

    private void OnRetransmitTimeout(long nowMs)
    {
        if (_sndWnd == 0)
        {
            // RFC 9293 3.8.6.1: the client closed its window on data in flight. This is not loss: switch to
            // persist probing, which never gives up while the client answers (the idle timeout still applies).
            // What is in flight goes again once the window opens.
            MarkAllLost();
            _probePending = true;
            WindowProbes++;
            _timer.Set(TcpTimerKind.Persist, nowMs + PersistInterval());
            return;
        }

        if (_retransmits >= _config.MaxRetransmits)
        {
            // RFC 9293 3.8.3 R2: give up on the connection.
            Terminate(TcpCloseReason.RetransmitLimit, sendRst: true);
            return;
        }

        RetransmitTimeouts++;
        bool first = _retransmits == 0;
        _retransmits++;
        if (_retransmits >= 2)
        {
            ForgetSacks(); // RFC 6675 5.1 / RFC 2018 8: the receiver may have reneged on SACKed data
        }

        OnRetransmitTimeoutCongestion(first);
        _rtt.Backoff();                                // RFC 6298 (5.5)
        SetRetransmitTimer(nowMs + _rtt.RtoMs);        // RFC 6298 (5.6); Dispatch then resends what is lost (5.4)
    }

    private void OnPersistTimeout(long nowMs)
    {
        // RFC 9293 3.8.6.1: probe the zero window, backing off exponentially, never giving up.
        _probePending = true;
        WindowProbes++;
        _persistBackoff = Math.Min(_persistBackoff + 1, 16);
        _timer.Set(TcpTimerKind.Persist, nowMs + PersistInterval());
    }

    private long PersistInterval() => Math.Min(_rtt.RtoMs << Math.Min(_persistBackoff, 16), _config.MaxRtoMs);

    /// <summary>RFC 6298 5.1/5.3/5.6: the RTO deadline is set here and only here.</summary>
    private void SetRetransmitTimer(long atMs)
    {
        _rtoAtMs = atMs;
        _timer.Set(TcpTimerKind.Retransmit, atMs);
    }

    /// <summary>RFC 6298 (5.3) on an ACK of new data, with RFC 8985 7.2's loss probe in front when allowed.</summary>
    private void RestartRetransmitTimer(long nowMs)
    {
        SetRetransmitTimer(nowMs + _rtt.RtoMs);
        if (TlpAllowed)
        {
            ScheduleLossProbe(nowMs);
        }
    }

    /// <summary>
    /// After sending: RFC 6298 5.1 (start the RTO when data is outstanding and it is not running), RFC 8985
    /// 7.2 (new data moves the loss probe, never past the RTO), RFC 9293 3.8.6.1 (persist on a zero window).
    /// </summary>
    private void ArmTimers(long nowMs, bool sentNewData)
    {
        if (_state is TcpState.Closed or TcpState.TimeWait)
        {
            return;
        }

        if (_sndNxt == _sndUna)
        {
            int unsent = _sendRing.Count;
            if (_sndWnd == 0 && unsent > 0)
            {
                if (_timer.Kind != TcpTimerKind.Persist)
                {
                    _persistBackoff = 0;
                    _timer.Set(TcpTimerKind.Persist, nowMs + PersistInterval());
                }
            }
            else if (_timer.Kind is TcpTimerKind.Retransmit or TcpTimerKind.LossProbe or TcpTimerKind.Persist)
            {
                _timer.Stop();
            }

            _rackTimerAtMs = long.MaxValue;
            return;
        }

        if (_timer.Kind == TcpTimerKind.Persist)
        {
            return; // the window closed on data in flight: probing until it opens
        }

        if (_timer.Kind is not (TcpTimerKind.Retransmit or TcpTimerKind.LossProbe))
        {
            SetRetransmitTimer(nowMs + _rtt.RtoMs);
            if (TlpAllowed)
            {
                ScheduleLossProbe(nowMs);
            }
        }
        else if (sentNewData && TlpAllowed)
        {
            ScheduleLossProbe(nowMs);
        }
    }
}
