using System.Globalization;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>
/// Task ids and finished task records of the simulated router. Like a real router, a task id is numbered per session
/// and names one task however many miners answered it; the record keeps each miner's result
/// (<c>GET /api/v1/tasks/{sessionId}/{taskId}</c>). Only the latest <see cref="Capacity"/> tasks are kept.
/// </summary>
internal sealed class SimulatedTasks
{
    public const int Capacity = 1000;

    /// <summary>The task status real routers report once every miner's result is in.</summary>
    public const int StatusDone = 4;

    private readonly Lock _gate = new();
    private readonly Dictionary<long, long> _nextId = [];
    private readonly Dictionary<(long Session, string Task), SimTask> _tasks = [];
    private readonly Queue<(long Session, string Task)> _order = new();

    /// <summary>The next task id of <paramref name="sessionId"/> (1, 2, …).</summary>
    public string NextTaskId(long sessionId)
    {
        lock (_gate)
        {
            var next = _nextId.GetValueOrDefault(sessionId) + 1;
            _nextId[sessionId] = next;
            return next.ToString(CultureInfo.InvariantCulture);
        }
    }

    public void Finish(long sessionId, string taskId, IReadOnlyList<SimulatedMinerResult> results, long finishedAt)
    {
        var record = new SimTask(
            [.. results.Select(r => r.Address)],
            new SimTaskResults([.. results.Select(r => r.Text)], [.. results.Select(r => r.Address)]),
            StatusDone,
            finishedAt);
        lock (_gate)
        {
            if (_tasks.TryAdd((sessionId, taskId), record))
            {
                _order.Enqueue((sessionId, taskId));
                while (_order.Count > Capacity)
                {
                    _tasks.Remove(_order.Dequeue());
                }
            }
        }
    }

    public bool TryGet(long sessionId, string taskId, out SimTask task)
    {
        lock (_gate)
        {
            return _tasks.TryGetValue((sessionId, taskId), out task!);
        }
    }
}

/// <summary>One miner's answer to a task.</summary>
internal sealed record SimulatedMinerResult(string Address, string Text);
