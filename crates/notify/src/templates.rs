//! Texts of the PIN and receipt messages, in English, German, French and Spanish.
//!
//! `locale` is a BCP 47 tag (`"de-DE"`, `"fr"`); its primary language subtag picks the
//! template, and anything unknown or absent falls back to English.

use dcbhub_domain::{Description, ExtTransactionId, Money};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Language {
    En,
    De,
    Fr,
    Es,
}

impl Language {
    fn from_locale(locale: Option<&str>) -> Self {
        let primary = locale
            .and_then(|l| l.split(['-', '_']).next())
            .map(str::to_ascii_lowercase);
        match primary.as_deref() {
            Some("de") => Self::De,
            Some("fr") => Self::Fr,
            Some("es") => Self::Es,
            _ => Self::En,
        }
    }

    fn minutes(self, n: u32) -> String {
        let unit = match (self, n == 1) {
            (Self::En | Self::Fr, true) => "minute",
            (Self::En | Self::Fr, false) => "minutes",
            (Self::De, true) => "Minute",
            (Self::De, false) => "Minuten",
            (Self::Es, true) => "minuto",
            (Self::Es, false) => "minutos",
        };
        format!("{n} {unit}")
    }
}

/// The message that carries a PIN: the partner, the PIN, the purchase it confirms when it is
/// bound to one, and how long it is valid.
///
/// English: "Your Netflix PIN is 123456 for 4.99 GBP: Premium plan. Valid for 5 minutes; do
/// not share it."
pub fn pin_message(
    locale: Option<&str>,
    partner_name: &str,
    pin: &str,
    purchase: Option<(&Money, &Description)>,
    valid_minutes: u32,
) -> String {
    let lang = Language::from_locale(locale);
    let minutes = lang.minutes(valid_minutes);
    let purchase = purchase.map(|(money, description)| {
        let description = description.as_str();
        match lang {
            Language::En => format!(" for {money}: {description}"),
            Language::De => format!(" für {money}: {description}"),
            Language::Fr => format!(" pour {money} : {description}"),
            Language::Es => format!(" para {money}: {description}"),
        }
    });
    let purchase = purchase.as_deref().unwrap_or("");
    match lang {
        Language::En => format!(
            "Your {partner_name} PIN is {pin}{purchase}. Valid for {minutes}; do not share it."
        ),
        Language::De => format!(
            "Ihre {partner_name} PIN ist {pin}{purchase}. Gültig für {minutes}; bitte nicht weitergeben."
        ),
        Language::Fr => format!(
            "Votre code PIN {partner_name} est {pin}{purchase}. Valable {minutes} ; ne le partagez pas."
        ),
        Language::Es => format!(
            "Su PIN de {partner_name} es {pin}{purchase}. Válido durante {minutes}; no lo comparta."
        ),
    }
}

/// The receipt for a charge: the partner, the amount, what was bought and the partner's
/// reference.
pub fn receipt_message(
    locale: Option<&str>,
    partner_name: &str,
    money: &Money,
    description: &Description,
    ext_transaction_id: &ExtTransactionId,
) -> String {
    let description = description.as_str();
    match Language::from_locale(locale) {
        Language::En => format!(
            "{partner_name}: {money} for {description} has been charged to your phone bill. Reference: {ext_transaction_id}."
        ),
        Language::De => format!(
            "{partner_name}: {money} für {description} wurden Ihrer Mobilfunkrechnung belastet. Referenz: {ext_transaction_id}."
        ),
        Language::Fr => format!(
            "{partner_name} : {money} pour {description} ont été ajoutés à votre facture mobile. Référence : {ext_transaction_id}."
        ),
        Language::Es => format!(
            "{partner_name}: se han cargado {money} por {description} en su factura móvil. Referencia: {ext_transaction_id}."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dcbhub_domain::Currency;

    fn money() -> Money {
        Money::parse("4.99", Currency::parse("GBP").unwrap()).unwrap()
    }

    fn plan() -> Description {
        Description::parse("Premium plan").unwrap()
    }

    #[test]
    fn english_pin_with_and_without_purchase() {
        let m = money();
        let d = plan();
        assert_eq!(
            pin_message(None, "Netflix", "123456", Some((&m, &d)), 5),
            "Your Netflix PIN is 123456 for 4.99 GBP: Premium plan. Valid for 5 minutes; do not share it."
        );
        assert_eq!(
            pin_message(Some("en-GB"), "Netflix", "123456", None, 1),
            "Your Netflix PIN is 123456. Valid for 1 minute; do not share it."
        );
    }

    #[test]
    fn locale_picks_by_primary_subtag_and_falls_back_to_english() {
        let pin = |locale| pin_message(locale, "Acme", "4321", None, 10);
        assert!(
            pin(Some("de-DE")).starts_with("Ihre Acme PIN ist 4321."),
            "{}",
            pin(Some("de-DE"))
        );
        assert!(pin(Some("DE")).contains("10 Minuten"));
        assert!(pin(Some("fr")).starts_with("Votre code PIN Acme est 4321."));
        assert!(pin(Some("fr_CA")).contains("10 minutes ; ne le partagez pas"));
        assert!(pin(Some("es-MX")).starts_with("Su PIN de Acme es 4321."));
        assert!(pin(Some("es")).contains("10 minutos"));
        for other in [
            None,
            Some(""),
            Some("it-IT"),
            Some("en"),
            Some("zz"),
            Some("-de"),
        ] {
            assert!(
                pin(other).starts_with("Your Acme PIN is 4321."),
                "{other:?}"
            );
        }
    }

    #[test]
    fn localized_pins_name_the_purchase() {
        let m = money();
        let d = plan();
        let de = pin_message(Some("de"), "Acme", "111111", Some((&m, &d)), 5);
        assert_eq!(
            de,
            "Ihre Acme PIN ist 111111 für 4.99 GBP: Premium plan. Gültig für 5 Minuten; bitte nicht weitergeben."
        );
        let fr = pin_message(Some("fr"), "Acme", "111111", Some((&m, &d)), 5);
        assert!(fr.contains("111111 pour 4.99 GBP : Premium plan."), "{fr}");
        let es = pin_message(Some("es"), "Acme", "111111", Some((&m, &d)), 1);
        assert!(
            es.contains("111111 para 4.99 GBP: Premium plan. Válido durante 1 minuto;"),
            "{es}"
        );
    }

    #[test]
    fn receipts_name_partner_amount_description_and_reference() {
        let m = money();
        let d = plan();
        let ext = ExtTransactionId::parse("ott-0001").unwrap();
        assert_eq!(
            receipt_message(None, "Netflix", &m, &d, &ext),
            "Netflix: 4.99 GBP for Premium plan has been charged to your phone bill. Reference: ott-0001."
        );
        for locale in ["de-AT", "fr-FR", "es"] {
            let r = receipt_message(Some(locale), "Netflix", &m, &d, &ext);
            assert!(r.starts_with("Netflix"), "{r}");
            assert!(
                r.contains("4.99 GBP") && r.contains("Premium plan") && r.contains("ott-0001"),
                "{r}"
            );
            assert!(!r.contains("charged"), "{locale}: {r}");
        }
    }
}
