using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Cortensor.Portal.Fleet.Simulator;

/// <summary>Request handlers of the simulated router; one instance per <c>MapRouterSimulator</c> call.</summary>
internal sealed class RouterSimulator(RouterSimulatorOptions options, RouterSimulatorStats stats)
{
    private const int DefaultTaskTimeoutSeconds = 60;
    private const string RouterName = "cortensor-router-simulator";
    private const string Version = "simulator-1";
    private const string SecondMinerPrefix = "[miner-2] ";
    private const string RouterAddress = "0x00000000000000000000000000000000000000f0";
    private const string FirstMinerAddress = "0x00000000000000000000000000000000000000a1";
    private const string SecondMinerAddress = "0x00000000000000000000000000000000000000a2";

    private static readonly string[] ApiVersions = ["v1", "v2", "v3"];
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] DoneEvent = "data: [DONE]\n\n"u8.ToArray();

    private readonly Lock _diceGate = new();
    private readonly long _startedAt = options.TimeProvider.GetTimestamp();
    private readonly SimulatedTasks _tasks = new();
    private readonly SessionStreamQueues _streamQueues = new();
    private Random? _dice;
    private int? _diceSeed;
    private long _sequence;

    // The shapes of /status and /info are those community clients declare for real routers (tensorme-advanced types).
    public Task StatusAsync(HttpContext context) => GetAsync(context, () => WriteJsonAsync(
        context,
        new SimStatus(
            options.Sessions.Count,
            Miners().Count,
            CpuUsage: 0,
            MemoryUsage: 0,
            (long)options.TimeProvider.GetElapsedTime(_startedAt).TotalSeconds),
        SimulatorJsonContext.Default.SimStatus));

    public Task InfoAsync(HttpContext context) => GetAsync(context, () => WriteJsonAsync(
        context,
        new SimInfo(
            options.Sessions.Count,
            RouterAddress,
            "127.0.0.1",
            RouterName,
            new SimNodeStats(DedicatedCount: Miners().Count, EphemeralCount: 0, TotalCount: Miners().Count),
            options.Sessions.Count,
            Version),
        SimulatorJsonContext.Default.SimInfo));

    /// <summary><c>GET /api/v1/tasks/{sessionId}/{taskId}</c>: a finished task with every miner's result; 404 when unknown.</summary>
    public Task TaskAsync(HttpContext context) => GetAsync(context, () =>
    {
        if (!TryParseId(context.Request.RouteValues["sessionId"], out var sessionId)
            || context.Request.RouteValues["taskId"] is not string taskId
            || !_tasks.TryGet(sessionId, taskId, out var task))
        {
            return WriteErrorAsync(context, StatusCodes.Status404NotFound, "Task not found");
        }

        return WriteJsonAsync(context, task, SimulatorJsonContext.Default.SimTask);
    });

    public Task AboutAsync(HttpContext context) => InfoAsync(context);

    public Task PingAsync(HttpContext context) =>
        GetAsync(context, () => WriteJsonAsync(context, new SimPing("ok", "pong"), SimulatorJsonContext.Default.SimPing));

    public Task SessionsAsync(HttpContext context) => GetAsync(context, () => WriteJsonAsync(
        context,
        new SimSessions([.. options.Sessions.Select(s => new SimSession(s.Id, s.Model, "active"))]),
        SimulatorJsonContext.Default.SimSessions));

    public Task SessionAsync(HttpContext context) => GetAsync(context, () =>
    {
        if (!TryParseId(context.Request.RouteValues["id"], out var id) || !TryGetModel(id, out var model))
        {
            return WriteErrorAsync(context, StatusCodes.Status404NotFound, "Session not found");
        }

        return WriteJsonAsync(context, new SimSession(id, model, "active"), SimulatorJsonContext.Default.SimSession);
    });

    public Task MinersAsync(HttpContext context) =>
        GetAsync(context, () => WriteJsonAsync(context, new SimMiners(Miners()), SimulatorJsonContext.Default.SimMiners));

    public Task CompletePathFormAsync(HttpContext context) => RunAsync(context, () => CompleteAsync(context, pathForm: true));

    public Task CompleteBodyFormAsync(HttpContext context) => RunAsync(context, () => CompleteAsync(context, pathForm: false));

    private List<SimMiner> Miners()
    {
        var miners = new List<SimMiner> { new("miner-1", FirstMinerAddress, "online") };
        if (options.InterleaveMiners)
        {
            miners.Add(new("miner-2", SecondMinerAddress, "online"));
        }

        return miners;
    }

    private Task GetAsync(HttpContext context, Func<Task> answer) => RunAsync(context, answer);

    /// <summary>Latency, then the bearer check, then <paramref name="handler"/>; a client that goes away just ends the request.</summary>
    private async Task RunAsync(HttpContext context, Func<Task> handler)
    {
        try
        {
            await DelayAsync(options.Latency, context.RequestAborted);
            if (!IsAuthorized(context))
            {
                stats.RecordUnauthorized();
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await WriteErrorAsync(context, StatusCodes.Status401Unauthorized, "Unauthorized: missing or invalid API key");
                return;
            }

            await handler();
        }
        catch (Exception ex) when (context.RequestAborted.IsCancellationRequested && ex is OperationCanceledException or IOException)
        {
            // The client went away.
        }
    }

    private bool IsAuthorized(HttpContext context)
    {
        var key = options.ApiKey;
        if (string.IsNullOrEmpty(key))
        {
            return true;
        }

        var header = context.Request.Headers.Authorization.ToString();
        const string Scheme = "Bearer ";
        return header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)
            && string.Equals(header[Scheme.Length..].Trim(), key, StringComparison.Ordinal);
    }

    private async Task CompleteAsync(HttpContext context, bool pathForm)
    {
        var version = context.Request.RouteValues["version"] as string;
        if (version is null || !ApiVersions.Contains(version, StringComparer.Ordinal))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "Not Found");
            return;
        }

        var forms = options.UrlForms;
        if ((pathForm && forms == SimulatedUrlForms.BodyOnly) || (!pathForm && forms == SimulatedUrlForms.PathOnly))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "Not Found");
            return;
        }

        long pathSessionId = 0;
        if (pathForm && !TryParseId(context.Request.RouteValues["sessionId"], out pathSessionId))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, "Not Found");
            return;
        }

        SimCompletionRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(context.Request.Body, SimulatorJsonContext.Default.SimCompletionRequest, context.RequestAborted);
        }
        catch (JsonException)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "Invalid JSON body");
            return;
        }

        if (body?.Prompt is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "Missing required field 'prompt'");
            return;
        }

        if (!pathForm && body.SessionId is null)
        {
            await WriteErrorAsync(context, StatusCodes.Status400BadRequest, "Missing required field 'session_id'");
            return;
        }

        var sessionId = pathForm ? pathSessionId : body.SessionId!.Value;
        var request = ToRecord(context, version, pathForm, sessionId, body);
        stats.RecordCompletion(request);

        if (!TryGetModel(sessionId, out var model))
        {
            await WriteErrorAsync(context, StatusCodes.Status404NotFound, $"Session {sessionId} not found");
            return;
        }

        switch (RollFault())
        {
            case Fault.Error:
                stats.RecordInjectedError();
                await WriteErrorAsync(context, options.ErrorStatusCode, "Simulated router error");
                return;
            case Fault.Empty:
                stats.RecordEmptyReply();
                await WriteEmptyAsync(context, request.Stream, TimeSpan.Zero);
                return;
            case Fault.Timeout:
                stats.RecordTimedOutReply();
                await WriteEmptyAsync(context, request.Stream, TimeoutDelay(request.Timeout));
                return;
        }

        var sequence = Interlocked.Increment(ref _sequence);
        var reply = new Reply(
            Id: "cmpl-sim-" + sequence.ToString(CultureInfo.InvariantCulture),
            SessionId: sessionId,
            TaskId: _tasks.NextTaskId(sessionId),
            Created: options.TimeProvider.GetUtcNow().ToUnixTimeSeconds(),
            Model: model,
            Tokens: ReplyTokens(sessionId, body.Prompt, request.MaxTokens ?? 0),
            FinishReason: SimulatedReply.FinishReason(sessionId, body.Prompt, request.MaxTokens ?? 0),
            PromptTokens: (body.Prompt.Length + 3) / 4);

        if (request.Stream)
        {
            await StreamAsync(context, reply);
        }
        else
        {
            await RespondAsync(context, reply);
        }
    }

    private List<string> ReplyTokens(long sessionId, string prompt, int maxTokens)
    {
        var tokens = SimulatedReply.Tokens(sessionId, prompt, maxTokens).ToList();
        if (options.AppendTurnMarker)
        {
            tokens.Add(RouterSimulatorOptions.TurnMarkerText);
        }

        return tokens;
    }

    private async Task RespondAsync(HttpContext context, Reply reply)
    {
        try
        {
            await DelayAsync(options.TimeToFirstToken + TokenDelay() * reply.Tokens.Count, context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            stats.RecordAbortedStream();
            return;
        }

        var completion = new SimCompletion(
            reply.Id,
            "text_completion",
            reply.Created,
            reply.Model,
            [new SimChoice(string.Concat(reply.Tokens), 0, reply.FinishReason, null)],
            Usage(reply, reply.Tokens.Count),
            reply.TaskId);
        FinishTask(reply);
        await WriteJsonAsync(context, completion, SimulatorJsonContext.Default.SimCompletion);
    }

    /// <summary>Files the task's record: one result per miner, all under the one task id.</summary>
    private void FinishTask(Reply reply)
    {
        var text = string.Concat(reply.Tokens);
        List<SimulatedMinerResult> results = [new(FirstMinerAddress, text)];
        if (options.InterleaveMiners)
        {
            results.Add(new(SecondMinerAddress, SecondMinerPrefix + text));
        }

        _tasks.Finish(reply.SessionId, reply.TaskId, results, options.TimeProvider.GetUtcNow().ToUnixTimeSeconds());
    }

    private async Task StreamAsync(HttpContext context, Reply reply)
    {
        var response = context.Response;
        var aborted = context.RequestAborted;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

        var events = Events(reply, reply.Id, reply.Tokens);
        var finishes = 1;
        if (options.InterleaveMiners)
        {
            // A second miner of the same task (same task_id, its own id), as routers before PR #112 forwarded.
            var secondTokens = reply.Tokens.ToList();
            secondTokens.Insert(0, SecondMinerPrefix);
            events = Interleave(events, Events(reply, reply.Id + "-m2", secondTokens));
            finishes = 2;
        }

        var queue = _streamQueues.Join(reply.SessionId, options.NonBlockingStreamQueue);
        try
        {
            await response.StartAsync(aborted);
            await response.Body.FlushAsync(aborted);
            _ = ProduceAsync(queue, events, reply);

            // Write whatever the queue holds next; on a shared (blocking) queue that may be another stream's chunk.
            var finished = 0;
            while (finished < finishes && await queue.Channel.Reader.WaitToReadAsync(aborted))
            {
                if (!queue.Channel.Reader.TryRead(out var chunk))
                {
                    continue;
                }

                await response.Body.WriteAsync(DataPrefix, aborted);
                await response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(chunk, SimulatorJsonContext.Default.SimCompletion), aborted);
                await response.Body.WriteAsync(EventEnd, aborted);
                await response.Body.FlushAsync(aborted);
                if (chunk.Choices[0].FinishReason is not null)
                {
                    finished++;
                }
            }

            if (!options.OmitDone)
            {
                await response.Body.WriteAsync(DoneEvent, aborted);
                await response.Body.FlushAsync(aborted);
            }

            stats.RecordCompletedStream();
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The caller went away: a write can fail with a reset before RequestAborted is set, so either counts.
            stats.RecordAbortedStream();
        }
        finally
        {
            queue.Leave();
        }
    }

    /// <summary>
    /// The miner side of a stream: the task's chunks, paced, into the queue the stream joined. It runs on when its own
    /// reader goes away (as a miner would) and stops once nobody reads the queue.
    /// </summary>
    private async Task ProduceAsync(SessionStreamQueue queue, List<SimCompletion> events, Reply reply)
    {
        try
        {
            await DelayAsync(options.TimeToFirstToken, CancellationToken.None);
            var sentToken = false;
            foreach (var chunk in events)
            {
                var isToken = chunk.Choices[0].FinishReason is null;
                if (isToken && sentToken)
                {
                    await DelayAsync(TokenDelay(), CancellationToken.None);
                }

                sentToken |= isToken;
                if (!queue.Channel.Writer.TryWrite(chunk))
                {
                    return; // every reader left
                }
            }

            FinishTask(reply);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
        {
            // Nothing waits for a producer.
        }
    }

    private List<SimCompletion> Events(Reply reply, string id, IReadOnlyList<string> tokens)
    {
        var events = new List<SimCompletion>(tokens.Count + 1);
        foreach (var token in tokens)
        {
            events.Add(new SimCompletion(id, "text_completion", reply.Created, reply.Model, [new SimChoice(token, 0, null, null)], null, reply.TaskId));
        }

        events.Add(new SimCompletion(
            id, "text_completion", reply.Created, reply.Model, [new SimChoice("", 0, reply.FinishReason, null)], Usage(reply, tokens.Count), reply.TaskId));
        return events;
    }

    private static List<SimCompletion> Interleave(List<SimCompletion> first, List<SimCompletion> second)
    {
        var result = new List<SimCompletion>(first.Count + second.Count) { first[0] };
        int i = 1, j = 0;
        while (i < first.Count || j < second.Count)
        {
            if (j < second.Count)
            {
                result.Add(second[j++]);
            }

            if (i < first.Count)
            {
                result.Add(first[i++]);
            }
        }

        return result;
    }

    private SimUsage? Usage(Reply reply, int completionTokens) =>
        options.OmitUsage ? null : new SimUsage(reply.PromptTokens, completionTokens, reply.PromptTokens + completionTokens);

    private TimeSpan TokenDelay()
    {
        var rate = options.TokensPerSecond;
        return rate > 0 && double.IsFinite(rate) ? TimeSpan.FromSeconds(1 / rate) : TimeSpan.Zero;
    }

    private Task DelayAsync(TimeSpan delay, CancellationToken cancellationToken) =>
        delay > TimeSpan.Zero ? Task.Delay(delay, options.TimeProvider, cancellationToken) : Task.CompletedTask;

    /// <summary>
    /// An answer with no answer in it: a 200 with an empty body, or a stream of only <c>data: [DONE]</c>, after
    /// <paramref name="hold"/> (a stream's headers go out first, as a router's do before its miners answer).
    /// </summary>
    private async Task WriteEmptyAsync(HttpContext context, bool stream, TimeSpan hold)
    {
        var response = context.Response;
        var aborted = context.RequestAborted;
        if (!stream)
        {
            await DelayAsync(hold, aborted);
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = "application/json";
            response.ContentLength = 0;
            return;
        }

        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await response.StartAsync(aborted);
        await response.Body.FlushAsync(aborted);
        await DelayAsync(hold, aborted);
        await response.Body.WriteAsync(DoneEvent, aborted);
        await response.Body.FlushAsync(aborted);
    }

    /// <summary>The router's own task timeout: <see cref="RouterSimulatorOptions.TimeoutAfter"/>, else the request's <c>timeout</c>.</summary>
    private TimeSpan TimeoutDelay(int? requestTimeoutSeconds) =>
        options.TimeoutAfter ?? TimeSpan.FromSeconds(requestTimeoutSeconds is > 0 ? requestTimeoutSeconds.Value : DefaultTaskTimeoutSeconds);

    /// <summary>One roll per completion over [error | empty | timeout | normal], so each rate is its own share.</summary>
    private Fault RollFault()
    {
        var error = Math.Max(0, options.ErrorRate);
        var empty = Math.Max(0, options.EmptyReplyRate);
        var timeout = Math.Max(0, options.TimeoutRate);
        if (error + empty + timeout <= 0)
        {
            return Fault.None;
        }

        var roll = Roll();
        return roll < error ? Fault.Error
            : roll < error + empty ? Fault.Empty
            : roll < error + empty + timeout ? Fault.Timeout
            : Fault.None;
    }

    private double Roll()
    {

        lock (_diceGate)
        {
            if (_dice is null || _diceSeed != options.Seed)
            {
                _diceSeed = options.Seed;
#pragma warning disable CA5394 // Test double: the dice need no cryptographic strength.
                _dice = options.Seed is { } seed ? new Random(seed) : new Random();
            }

            return _dice.NextDouble();
#pragma warning restore CA5394
        }
    }

    private bool TryGetModel(long sessionId, out string model)
    {
        var sessions = options.Sessions;
        if (sessions.Count == 0)
        {
            model = RouterSimulatorOptions.DefaultModel;
            return true;
        }

        foreach (var session in sessions)
        {
            if (session.Id == sessionId)
            {
                model = session.Model;
                return true;
            }
        }

        model = "";
        return false;
    }

    private static bool TryParseId(object? value, out long id) =>
        long.TryParse(value as string, NumberStyles.None, CultureInfo.InvariantCulture, out id);

    private SimulatedRouterRequest ToRecord(HttpContext context, string version, bool pathForm, long sessionId, SimCompletionRequest body) => new()
    {
        ApiVersion = version,
        SessionIdInPath = pathForm,
        SessionId = sessionId,
        BodySessionId = body.SessionId,
        Prompt = body.Prompt!,
        Stream = body.Stream ?? false,
        Timeout = body.Timeout,
        PromptType = body.PromptType,
        PromptTemplate = body.PromptTemplate,
        ClientReference = body.ClientReference,
        MaxTokens = body.MaxTokens,
        Temperature = body.Temperature,
        TopP = body.TopP,
        TopK = body.TopK,
        PresencePenalty = body.PresencePenalty,
        FrequencyPenalty = body.FrequencyPenalty,
        PrecommitTimeout = body.PrecommitTimeout,
        Stop = ReadStop(body.Stop),
        Authorization = context.Request.Headers.Authorization.Count > 0 ? context.Request.Headers.Authorization.ToString() : null,
        Accept = context.Request.Headers.Accept.Count > 0 ? context.Request.Headers.Accept.ToString() : null,
        ReceivedAt = options.TimeProvider.GetUtcNow(),
    };

    private static string[]? ReadStop(JsonElement? stop) => stop switch
    {
        { ValueKind: JsonValueKind.String } s => [s.GetString()!],
        { ValueKind: JsonValueKind.Array } a => [.. a.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!)],
        _ => null,
    };

    private Task WriteErrorAsync(HttpContext context, int statusCode, string message)
    {
        var response = context.Response;
        response.StatusCode = statusCode;
        if (options.PlainTextErrors)
        {
            response.ContentType = "text/plain; charset=utf-8";
            return response.Body.WriteAsync(Encoding.UTF8.GetBytes(message), context.RequestAborted).AsTask();
        }

        return WriteJsonAsync(context, new SimErrorEnvelope(new SimError(message)), SimulatorJsonContext.Default.SimErrorEnvelope, statusCode);
    }

    private static async Task WriteJsonAsync<T>(HttpContext context, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo, int statusCode = StatusCodes.Status200OK)
    {
        var response = context.Response;
        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes, context.RequestAborted);
    }

    private enum Fault
    {
        None,
        Error,
        Empty,
        Timeout,
    }

    private sealed record Reply(string Id, long SessionId, string TaskId, long Created, string Model, IReadOnlyList<string> Tokens, string FinishReason, int PromptTokens);
}
