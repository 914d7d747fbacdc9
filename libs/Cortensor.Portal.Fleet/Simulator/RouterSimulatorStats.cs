namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>What the simulated router saw; thread-safe, for tests.</summary>
public sealed class RouterSimulatorStats
{
    private const int RecentCapacity = 100;

    private readonly Lock _gate = new();
    private readonly Queue<SimulatedRouterRequest> _recent = new();
    private long _totalCompletions;
    private long _streamedCompletions;
    private long _completedStreams;
    private long _injectedErrors;
    private long _abortedStreams;
    private long _unauthorizedRequests;
    private long _emptyReplies;
    private long _timedOutReplies;
    private SimulatedRouterRequest? _lastRequest;

    /// <summary>Completion requests with a readable body (valid JSON with a prompt and a session id), whatever came next.</summary>
    public long TotalCompletions => Interlocked.Read(ref _totalCompletions);

    /// <summary>Of <see cref="TotalCompletions"/>, those that asked for <c>stream: true</c>.</summary>
    public long StreamedCompletions => Interlocked.Read(ref _streamedCompletions);

    /// <summary>Streams that were written to the end.</summary>
    public long CompletedStreams => Interlocked.Read(ref _completedStreams);

    /// <summary>Completions answered with the injected error (<see cref="RouterSimulatorOptions.ErrorRate"/>).</summary>
    public long InjectedErrors => Interlocked.Read(ref _injectedErrors);

    /// <summary>Completions answered empty at once (<see cref="RouterSimulatorOptions.EmptyReplyRate"/>).</summary>
    public long EmptyReplies => Interlocked.Read(ref _emptyReplies);

    /// <summary>Completions held and then answered empty (<see cref="RouterSimulatorOptions.TimeoutRate"/>), counted when held.</summary>
    public long TimedOutReplies => Interlocked.Read(ref _timedOutReplies);

    /// <summary>Streams (or paced completions) the client abandoned before the end.</summary>
    public long AbortedStreams => Interlocked.Read(ref _abortedStreams);

    /// <summary>Requests rejected with 401.</summary>
    public long UnauthorizedRequests => Interlocked.Read(ref _unauthorizedRequests);

    /// <summary>The last completion request with a readable body, or null.</summary>
    public SimulatedRouterRequest? LastRequest => Volatile.Read(ref _lastRequest);

    /// <summary>The last 100 completion requests with a readable body, oldest first.</summary>
    public IReadOnlyList<SimulatedRouterRequest> RecentRequests
    {
        get
        {
            lock (_gate)
            {
                return [.. _recent];
            }
        }
    }

    /// <summary>Sets every counter back to zero and forgets the requests.</summary>
    public void Reset()
    {
        lock (_gate)
        {
            _recent.Clear();
            Interlocked.Exchange(ref _totalCompletions, 0);
            Interlocked.Exchange(ref _streamedCompletions, 0);
            Interlocked.Exchange(ref _completedStreams, 0);
            Interlocked.Exchange(ref _injectedErrors, 0);
            Interlocked.Exchange(ref _abortedStreams, 0);
            Interlocked.Exchange(ref _unauthorizedRequests, 0);
            Interlocked.Exchange(ref _emptyReplies, 0);
            Interlocked.Exchange(ref _timedOutReplies, 0);
            Volatile.Write(ref _lastRequest, null);
        }
    }

    internal void RecordCompletion(SimulatedRouterRequest request)
    {
        lock (_gate)
        {
            _recent.Enqueue(request);
            while (_recent.Count > RecentCapacity)
            {
                _recent.Dequeue();
            }

            Volatile.Write(ref _lastRequest, request);
            Interlocked.Increment(ref _totalCompletions);
            if (request.Stream)
            {
                Interlocked.Increment(ref _streamedCompletions);
            }
        }
    }

    internal void RecordCompletedStream() => Interlocked.Increment(ref _completedStreams);

    internal void RecordInjectedError() => Interlocked.Increment(ref _injectedErrors);

    internal void RecordEmptyReply() => Interlocked.Increment(ref _emptyReplies);

    internal void RecordTimedOutReply() => Interlocked.Increment(ref _timedOutReplies);

    internal void RecordAbortedStream() => Interlocked.Increment(ref _abortedStreams);

    internal void RecordUnauthorized() => Interlocked.Increment(ref _unauthorizedRequests);
}

/// <summary>A completion request as the simulated router parsed it (body fields in snake_case on the wire).</summary>
public sealed record SimulatedRouterRequest
{
    /// <summary>The <c>{version}</c> route segment: v1, v2 or v3.</summary>
    public required string ApiVersion { get; init; }

    /// <summary>True for <c>/completions/{sessionId}</c>, false for the body form.</summary>
    public required bool SessionIdInPath { get; init; }

    /// <summary>The session id from the path (path form) or from <c>session_id</c> (body form).</summary>
    public required long SessionId { get; init; }

    /// <summary><c>session_id</c> as sent in the body, in either form.</summary>
    public long? BodySessionId { get; init; }

    public required string Prompt { get; init; }

    public bool Stream { get; init; }

    public int? Timeout { get; init; }

    public int? PromptType { get; init; }

    public string? PromptTemplate { get; init; }

    public string? ClientReference { get; init; }

    public int? MaxTokens { get; init; }

    public double? Temperature { get; init; }

    public double? TopP { get; init; }

    public int? TopK { get; init; }

    public double? PresencePenalty { get; init; }

    public double? FrequencyPenalty { get; init; }

    public int? PrecommitTimeout { get; init; }

    /// <summary><c>stop</c> as strings (a single string becomes a one-item list); null when absent.</summary>
    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>The raw <c>Authorization</c> header value.</summary>
    public string? Authorization { get; init; }

    /// <summary>The <c>Accept</c> header value.</summary>
    public string? Accept { get; init; }

    public DateTimeOffset ReceivedAt { get; init; }
}
