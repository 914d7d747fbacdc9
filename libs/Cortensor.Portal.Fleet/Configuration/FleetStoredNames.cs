using Cortensor.Portal.Fleet.Prompts;

namespace Cortensor.Portal.Fleet.Configuration;

/// <summary>
/// The text every durable store writes for fleet enums (routers.protocol, routers.url_form, router_pools.prompt_format,
/// router_pools.router_queues), so all
/// stores share one vocabulary. Unknown stored text is a data error, not a default.
/// </summary>
public static class FleetStoredNames
{
    public static string Of(RouterProtocol protocol) => protocol switch
    {
        RouterProtocol.Cortensor => "cortensor",
        RouterProtocol.OpenAICompatible => "openai_compatible",
        _ => throw new ArgumentOutOfRangeException(nameof(protocol), protocol, "Unknown router protocol."),
    };

    public static RouterProtocol ParseProtocol(string stored) => stored switch
    {
        "cortensor" => RouterProtocol.Cortensor,
        "openai_compatible" => RouterProtocol.OpenAICompatible,
        _ => throw new InvalidOperationException($"routers.protocol holds an unknown value '{stored}'."),
    };

    public static string Of(PromptFormat format) => format switch
    {
        PromptFormat.Plain => "plain",
        PromptFormat.ChatML => "chatml",
        PromptFormat.Llama3 => "llama3",
        PromptFormat.Gemma => "gemma",
        PromptFormat.Harmony => "harmony",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown prompt format."),
    };

    public static PromptFormat ParsePromptFormat(string stored) => stored switch
    {
        "plain" => PromptFormat.Plain,
        "chatml" => PromptFormat.ChatML,
        "llama3" => PromptFormat.Llama3,
        "gemma" => PromptFormat.Gemma,
        "harmony" => PromptFormat.Harmony,
        _ => throw new InvalidOperationException($"router_pools.prompt_format holds an unknown value '{stored}'."),
    };

    public static string Of(CortensorUrlForm form) => form switch
    {
        CortensorUrlForm.Path => "path",
        CortensorUrlForm.Body => "body",
        _ => throw new ArgumentOutOfRangeException(nameof(form), form, "Unknown URL form."),
    };

    public static CortensorUrlForm ParseUrlForm(string stored) => stored switch
    {
        "path" => CortensorUrlForm.Path,
        "body" => CortensorUrlForm.Body,
        _ => throw new InvalidOperationException($"routers.url_form holds an unknown value '{stored}'."),
    };

    public static string Of(RouterQueueMode mode) => mode switch
    {
        RouterQueueMode.Blocking => "blocking",
        RouterQueueMode.NonBlocking => "non_blocking",
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown router queue mode."),
    };

    public static RouterQueueMode ParseRouterQueues(string stored) => stored switch
    {
        "blocking" => RouterQueueMode.Blocking,
        "non_blocking" => RouterQueueMode.NonBlocking,
        _ => throw new InvalidOperationException($"router_pools.router_queues holds an unknown value '{stored}'."),
    };
}
