defmodule Tms.Store do
  @moduledoc false
  # One supervisor per named store, registered under the store's name.
  # The engine owner starts first: everything after it may use the engine,
  # and under :rest_for_one a restarted owner restarts them too. All process
  # names derive from the store's name.

  use Supervisor

  def start_link(config) do
    Supervisor.start_link(__MODULE__, config, name: config.name)
  end

  @impl true
  def init(config) do
    shards = for i <- 0..(config.ingest.shards - 1), do: {Tms.Store.Shard, {config, i}}

    children = [
      {Tms.Store.Owner, config},
      %{
        id: :shards,
        type: :supervisor,
        start: {Supervisor, :start_link, [shards, [strategy: :one_for_one]]}
      },
      {Tms.Store.Flusher, config}
    ]

    # The HTTP server last: it answers only once the engine and shards run,
    # and stops first, so no request finds them gone.
    children = if config.http, do: children ++ [{Tms.HTTP.Server, config}], else: children

    children =
      if config.scrape == [],
        do: children,
        else: children ++ [{Tms.Scraper, store: config.name, jobs: config.scrape}]

    # Shutdown runs in reverse: timers stop, shards write what they hold,
    # then the owner closes the engine with a final flush.
    Supervisor.init(children, strategy: :rest_for_one)
  end
end
