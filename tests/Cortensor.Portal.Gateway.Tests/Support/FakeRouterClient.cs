using System.Runtime.CompilerServices;
using Cortensor.Portal.Fleet.Configuration;
using Cortensor.Portal.Fleet.Protocols;

namespace Cortensor.Portal.Gateway.Tests.Support;

/// <summary>Stands in for a router so the gateway's own behaviour (validation, errors, SSE framing) is tested alone.</summary>
internal sealed class FakeRouterClient : IRouterProtocolClient
{
    private int _calls;
    private int _canceled;
    private int _streamsEnded;

    public RouterProtocol Protocol => RouterProtocol.Cortensor;

    public int Calls => Volatile.Read(ref _calls);

    /// <summary>Calls that ended because their token was cancelled while held (see <see cref="Hold"/>).</summary>
    public int Canceled => Volatile.Read(ref _canceled);

    /// <summary>Streams whose enumerator was disposed (read to the end or abandoned).</summary>
    public int StreamsEnded => Volatile.Read(ref _streamsEnded);

    public RouterTarget? LastTarget { get; private set; }

    public RouterCompletionRequest? LastRequest { get; private set; }

    public string Text { get; set; } = "Hello there.";

    public string? FinishReason { get; set; } = "stop";

    public RouterUsage? Usage { get; set; } = new(11, 3);

    /// <summary>Thrown by CompleteAsync, or by the stream before its first chunk.</summary>
    public RouterException? Failure { get; set; }

    /// <summary>Thrown by the stream after this many chunks.</summary>
    public int? FailStreamAfterChunks { get; set; }

    public IReadOnlyList<string> StreamChunks { get; set; } = ["Hel", "lo ", "there."];

    /// <summary>
    /// After its chunks the stream stays open until it is disposed or cancelled (a router still generating), so a
    /// test sees whether the gateway ended the call itself.
    /// </summary>
    public bool HoldStreamOpen { get; set; }

    /// <summary>Runs when a stream's enumerator is disposed (in the flow of whoever disposed it).</summary>
    public Action? OnStreamEnded { get; set; }

    /// <summary>When set, non-stream calls wait for it (to hold requests in flight).</summary>
    public TaskCompletionSource? Hold { get; set; }

    /// <summary>Runs inside each call (for example to move a fake clock, as a slow router would).</summary>
    public Action? OnCall { get; set; }

    public async Task<RouterCompletion> CompleteAsync(RouterTarget target, RouterCompletionRequest request, CancellationToken cancellationToken)
    {
        Record(target, request);
        OnCall?.Invoke();
        if (Hold is { } hold)
        {
            try
            {
                await hold.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _canceled);
                throw;
            }
        }

        if (Failure is not null)
        {
            throw Failure;
        }

        return new RouterCompletion { Text = Text, FinishReason = FinishReason, Usage = Usage, TaskId = "task-1" };
    }

    public async IAsyncEnumerable<RouterStreamChunk> StreamAsync(RouterTarget target, RouterCompletionRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        Record(target, request);
        OnCall?.Invoke();
        try
        {
            await Task.Yield();
            if (Failure is not null && FailStreamAfterChunks is null)
            {
                throw Failure;
            }

            for (var i = 0; i < StreamChunks.Count; i++)
            {
                if (FailStreamAfterChunks == i)
                {
                    throw Failure ?? new RouterException(RouterFailureKind.BadResponse, "stream broke");
                }

                var last = i == StreamChunks.Count - 1 && !HoldStreamOpen;
                yield return new RouterStreamChunk(StreamChunks[i], last ? FinishReason : null, last ? Usage : null);
            }

            if (HoldStreamOpen)
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
        }
        finally
        {
            Interlocked.Increment(ref _streamsEnded);
            OnStreamEnded?.Invoke();
        }
    }

    private void Record(RouterTarget target, RouterCompletionRequest request)
    {
        Interlocked.Increment(ref _calls);
        LastTarget = target;
        LastRequest = request;
    }
}
