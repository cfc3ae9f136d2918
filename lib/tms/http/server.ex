defmodule Tms.HTTP.Server do
  @moduledoc false
  # Serves Tms.HTTP.handle/7 with OTP's :httpd, in the store's supervision
  # tree. The GenServer starts an httpd instance (under inets, which owns
  # its processes), links to it so either going down takes the other, and
  # stops it on shutdown. httpd calls do/1 of this module for every request;
  # the instance's server_name carries the store's name, and the store's
  # token sits in :persistent_term.
  #
  # httpd hands a body over as a charlist: it is made a binary once, here,
  # and never becomes a term per sample. Responses are sent with TCP_NODELAY
  # set on the connection: httpd writes the head and the body separately,
  # and with Nagle's algorithm the body waited for the client's delayed ACK
  # (40 ms a keep-alive request).

  use GenServer
  require Record

  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  def start_link(config) do
    GenServer.start_link(__MODULE__, config, name: Module.concat(config.name, HTTP))
  end

  @doc "The port the store's server listens on (useful with `port: 0`)."
  def port(store) do
    GenServer.call(Module.concat(store, HTTP), :port)
  end

  @impl true
  def init(%{name: store, http: http}) do
    Process.flag(:trap_exit, true)
    :ok = ensure_inets()
    :persistent_term.put({__MODULE__, store}, http.token)
    root = String.to_charlist(System.tmp_dir!())

    config = [
      port: http.port,
      bind_address: http.ip,
      ipfamily: if(tuple_size(http.ip) == 8, do: :inet6, else: :inet),
      server_name: String.to_charlist("tms:" <> Atom.to_string(store)),
      server_root: root,
      document_root: root,
      modules: [__MODULE__],
      keep_alive: true,
      keep_alive_timeout: 120,
      max_clients: http.max_clients,
      max_body_size: http.max_body_bytes,
      max_header_size: 65_536,
      # A client that trickles its request (slow-loris) is cut off.
      minimum_bytes_per_second: 1_024
    ]

    case :inets.start(:httpd, config) do
      {:ok, pid} ->
        Process.link(pid)
        {:ok, %{httpd: pid, store: store, port: :httpd.info(pid)[:port]}}

      {:error, reason} ->
        {:stop, {:http_server, reason}}
    end
  end

  @impl true
  def handle_call(:port, _from, state), do: {:reply, state.port, state}

  @impl true
  def handle_info({:EXIT, pid, reason}, %{httpd: pid} = state), do: {:stop, reason, state}
  def handle_info({:EXIT, _other, _reason}, state), do: {:noreply, state}

  @impl true
  def terminate(_reason, state) do
    :inets.stop(:httpd, state.httpd)
    :persistent_term.erase({__MODULE__, state.store})
  end

  defp ensure_inets do
    case Application.ensure_all_started(:inets) do
      {:ok, _} -> :ok
      {:error, reason} -> {:error, reason}
    end
  end

  @doc false
  # httpd's callback: one request in, one response out.
  def unquote(:do)(request) do
    _ = :inet.setopts(mod(request, :socket), nodelay: true)
    "tms:" <> store = List.to_string(:httpd_util.lookup(mod(request, :config_db), :server_name))
    store = String.to_existing_atom(store)
    token = :persistent_term.get({__MODULE__, store}, nil)
    {path, query} = split_uri(mod(request, :request_uri))
    headers = for {k, v} <- mod(request, :parsed_header), do: {List.to_string(k), to_binary(v)}
    body = to_binary(mod(request, :entity_body))
    method = List.to_string(mod(request, :method))

    {status, headers, body} = Tms.HTTP.handle(store, method, path, query, headers, body, token: token)
    body = IO.iodata_to_binary(body)

    head =
      [code: status, content_length: Integer.to_charlist(byte_size(body))] ++
        for({k, v} <- headers, do: {String.to_atom(k), String.to_charlist(v)})

    {:proceed, [{:response, {:response, head, body}}]}
  end

  defp split_uri(uri) do
    case :string.split(uri, '?') do
      [path, query] -> {List.to_string(path), List.to_string(query)}
      [path] -> {List.to_string(path), ""}
    end
  end

  # httpd gives bodies and header values as charlists of bytes.
  defp to_binary(list) when is_list(list), do: :erlang.list_to_binary(list)
  defp to_binary(binary) when is_binary(binary), do: binary
end
