//! The simulated customers: who they are on each platform, and what they say next.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;
use rand::seq::IndexedRandom;
use snorq_connectors::Platform;

use super::payloads::{Customer, Said};

const NAMES: [&str; 12] = [
    "Ana Souza",
    "Ben Carter",
    "Chloé Martin",
    "Dmitri Volkov",
    "Esra Yılmaz",
    "Farah Haddad",
    "Gustavo Lima",
    "Hana Sato",
    "Isaac Mensah",
    "Julia Nowak",
    "Kofi Boateng",
    "Lena Fischer",
];

const LINES: [&str; 12] = [
    "Hi! Do you ship to Brazil?",
    "Is the blue jacket still in stock in size M?",
    "My order #1042 hasn't arrived yet.",
    "Can I change my delivery address?",
    "What are your opening hours on Sunday?",
    "Do you have a discount code for first orders?",
    "I'd like to return an item, how does it work?",
    "Is there a warranty on the headphones?",
    "Thanks, that helps!",
    "Perfect, I'll order now.",
    "Can I pay on delivery?",
    "The package arrived damaged :(",
];

const PLACES: [(&str, f64, f64); 4] = [
    ("Avenida Paulista, São Paulo", -23.5614, -46.6559),
    ("Alexanderplatz, Berlin", 52.5219, 13.4132),
    ("Shibuya Crossing, Tokyo", 35.6595, 139.7005),
    ("Kotoka Airport, Accra", 5.6052, -0.1668),
];

const EMOJIS: [&str; 4] = ["\u{2764}\u{fe0f}", "\u{1f44d}", "\u{1f602}", "\u{1f62e}"];

/// The customers of every platform, and the business's latest message to each (what they
/// react to).
pub struct Population {
    customers: HashMap<Platform, Vec<Customer>>,
    /// (platform, thread) -> the business's latest message id.
    latest_reply: Mutex<HashMap<(Platform, String), String>>,
}

impl Population {
    /// `per_platform` customers on each platform; `tag` keeps ids apart between runs.
    pub fn new(per_platform: usize, tag: &str) -> Self {
        let per_platform = per_platform.max(1);
        let customers = [Platform::WhatsApp, Platform::Facebook, Platform::TikTok]
            .into_iter()
            .map(|platform| {
                let list = (0..per_platform).map(|i| customer(platform, i, tag)).collect();
                (platform, list)
            })
            .collect();
        Population {
            customers,
            latest_reply: Mutex::new(HashMap::new()),
        }
    }

    pub fn all(&self, platform: Platform) -> &[Customer] {
        self.customers.get(&platform).map_or(&[], Vec::as_slice)
    }

    /// The customer a send to `recipient` goes to: WhatsApp numbers may carry a `+`; TikTok
    /// addresses the thread. A recipient the simulator did not invent (e.g. a conversation made
    /// by other tests) gets a stand-in, so its receipts still flow.
    pub fn recipient(&self, platform: Platform, recipient: &str) -> Customer {
        let recipient = recipient.trim_start_matches('+');
        self.all(platform)
            .iter()
            .find(|c| c.thread == recipient)
            .cloned()
            .unwrap_or_else(|| Customer {
                platform,
                id: if platform == Platform::TikTok {
                    format!("-000SIMuser-{recipient}")
                } else {
                    recipient.to_owned()
                },
                name: "Someone".to_owned(),
                username: "someone".to_owned(),
                thread: recipient.to_owned(),
            })
    }

    pub fn remember_reply(&self, customer: &Customer, message_id: &str) {
        self.latest().insert(
            (customer.platform, customer.thread.clone()),
            message_id.to_owned(),
        );
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, HashMap<(Platform, String), String>> {
        self.latest_reply
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A random customer of `platform` and what they say: mostly text, sometimes an image or a
    /// location, and a reaction when the business has written to them. `media_url` makes an
    /// image's URL from its id.
    pub fn next_message(
        &self,
        platform: Platform,
        rng: &mut impl Rng,
        media_url: impl Fn(&str) -> String,
    ) -> Option<(Customer, Said)> {
        let customer = self.all(platform).choose(rng)?.clone();
        let roll: u32 = rng.random_range(0..100);
        let latest = self.latest().get(&(platform, customer.thread.clone())).cloned();
        let said = match roll {
            0..70 => None,
            70..80 => {
                let id = rng
                    .random_range(100_000_000_000_000u64..999_999_999_999_999)
                    .to_string();
                let url = media_url(&id);
                Some(Said::Image { id, url })
            }
            80..90 => {
                let (name, latitude, longitude) = *PLACES.choose(rng)?;
                Some(Said::Location {
                    latitude,
                    longitude,
                    name: name.to_owned(),
                })
            }
            _ => latest.map(|message_id| Said::Reaction {
                message_id,
                emoji: (*EMOJIS.choose(rng).unwrap_or(&"\u{1f44d}")).to_owned(),
            }),
        };
        let said = said
            .filter(|s| Said::supported_on(s.kind(), platform))
            .unwrap_or_else(|| Said::Text((*LINES.choose(rng).unwrap_or(&"Hello!")).to_owned()));
        Some((customer, said))
    }
}

fn customer(platform: Platform, i: usize, tag: &str) -> Customer {
    let name = NAMES[i % NAMES.len()];
    let number = if i < NAMES.len() {
        name.to_owned()
    } else {
        format!("{name} {}", i / NAMES.len() + 1)
    };
    let username = number.to_lowercase().replace(' ', ".");
    let (id, thread) = match platform {
        Platform::WhatsApp => {
            let phone = format!("1555{:07}", i + 100);
            (phone.clone(), phone)
        }
        Platform::Facebook => {
            let psid = format!("2468{:012}", i + 1);
            (psid.clone(), psid)
        }
        Platform::TikTok => (
            format!("-000SIMuser{tag}{i:04}"),
            format!("sim-conv-{tag}-{i:04}"),
        ),
    };
    Customer {
        platform,
        id,
        name: number,
        username,
        thread,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn customers_differ_and_are_found_by_recipient() {
        let population = Population::new(20, "t1");
        for platform in [Platform::WhatsApp, Platform::Facebook, Platform::TikTok] {
            let all = population.all(platform);
            assert_eq!(all.len(), 20);
            let threads: std::collections::HashSet<_> = all.iter().map(|c| &c.thread).collect();
            assert_eq!(threads.len(), 20, "{platform}");
            assert_eq!(population.recipient(platform, &all[7].thread), all[7]);
        }
        let whatsapp = &population.all(Platform::WhatsApp)[0];
        assert_eq!(
            population.recipient(Platform::WhatsApp, &format!("+{}", whatsapp.id)),
            *whatsapp
        );
        let stranger = population.recipient(Platform::TikTok, "other-thread");
        assert_eq!(stranger.thread, "other-thread");
        assert_ne!(
            stranger.id, "other-thread",
            "a TikTok user id is not its thread id"
        );
    }

    #[test]
    fn messages_mix_kinds_and_react_only_to_replies() {
        let population = Population::new(1, "t2");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let kinds = |population: &Population, platform, rng: &mut rand::rngs::StdRng| {
            let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
            for _ in 0..400 {
                let (_, said) = population
                    .next_message(platform, rng, |id| format!("http://sim/{id}.png"))
                    .unwrap();
                *kinds.entry(said.kind()).or_default() += 1;
            }
            kinds
        };
        let before = kinds(&population, Platform::WhatsApp, &mut rng);
        assert!(
            !before.contains_key("reaction"),
            "nothing to react to yet: {before:?}"
        );
        assert!(
            before["text"] > 250 && before["image"] > 10 && before["location"] > 10,
            "{before:?}"
        );
        let customer = population.all(Platform::WhatsApp)[0].clone();
        population.remember_reply(&customer, "wamid.ours");
        let after = kinds(&population, Platform::WhatsApp, &mut rng);
        assert!(after["reaction"] > 10, "{after:?}");
        let tiktok = kinds(&population, Platform::TikTok, &mut rng);
        assert_eq!(
            tiktok.keys().copied().collect::<Vec<_>>(),
            ["image", "text"],
            "TikTok has no locations or reactions"
        );
    }
}
